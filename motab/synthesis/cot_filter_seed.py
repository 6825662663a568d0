"""The CoT-filter seed's filter, as its extension1/filter-teacher-cot.py
(ShiboJin/CIS5300-Final-Project @ fa67766c): `synth-filter --mode seed`, the cotfilter study's default.

A teacher generation is dropped, for the first reason that applies, if it
  empty          is empty (whitespace only);
  banned_phrase  has a banned phrase (lower-cased substring) in its CoT: the text before the LAST
                 "####" (the whole text when there is none);
  too_long       has a CoT of more than max_words words (the seed: 250);
  repetition     (only with a repetition check switched on: our addition, not the seed's)
  no_answer      has no "#### x" (checked only when the gold answer is non-empty);
  wrong_answer   has a first "#### x" whose number differs from gold's.
Answers compare as the seed's normalize_number_string: commas and "$" removed, the first number
kept, "12" -> "12" via int, "12.50" -> "12.5" via float (so "#### 3.0" against gold "3" is a
mismatch, as in the seed). An answer with no number in it is KEPT (the seed only drops when both
normalised strings are non-empty and differ).
"""

from __future__ import annotations

import re

_BEFORE_LAST_HASH = re.compile(r"(.*)####", re.DOTALL)
_FIRST_HASH_ANSWER = re.compile(r"####\s*([^\n]+)")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def seed_cot(text: str) -> str:
    """The text before the last "####", stripped; the whole text stripped when there is none."""
    m = _BEFORE_LAST_HASH.search(text)
    return m.group(1).strip() if m else text.strip()


def seed_final_answer(text: str) -> str:
    """What follows the first "####" on its line, stripped ("" when there is no "####")."""
    m = _FIRST_HASH_ANSWER.search(text)
    return m.group(1).strip() if m else ""


def seed_normalize(s: str) -> str:
    """The seed's normalize_number_string."""
    if not s:
        return ""
    m = _NUMBER.search(s.strip().replace(",", "").replace("$", ""))
    if not m:
        return ""
    num = m.group(0)
    return str(int(num)) if "." not in num else str(float(num))


def seed_reason(output: str, gold: str, banned, max_words: int | None, repetition=None) -> str:
    """ "kept" or the first drop reason; `repetition(cot) -> bool` is our optional extra check."""
    if not output or not output.strip():
        return "empty"
    cot = seed_cot(output)
    lowered = cot.lower().strip()
    if any(phrase and phrase.lower() in lowered for phrase in banned):
        return "banned_phrase"
    if max_words is not None and len(lowered.split()) > max_words:
        return "too_long"
    if repetition is not None and repetition(cot):
        return "repetition"
    gold = gold.strip() if isinstance(gold, str) else str(gold)
    if gold:
        final = seed_final_answer(output)
        if not final:
            return "no_answer"
        gold_norm, pred_norm = seed_normalize(gold), seed_normalize(final)
        if gold_norm and pred_norm and gold_norm != pred_norm:
            return "wrong_answer"
    return "kept"

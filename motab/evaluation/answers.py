"""Extract the final answer from a model response (pure string functions, no sympy).

Order of preference, each taking the LAST occurrence in the text:
1. `\\boxed{...}` or `\\fbox{...}` (braces may nest; `\\boxed 5` without braces is accepted too);
2. GSM8K's `#### x`;
3. a final-answer phrase: "The (final) answer is x" / "Final answer: x" / "Answer: x".
"""

from __future__ import annotations

import re

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_HASH_RE = re.compile(r"####\s*([^\n]+)")
_PHRASE_RE = re.compile(
    r"(?:the\s+final\s+answer\s+is|the\s+answer\s+is|final\s+answer\s*(?:is)?\s*:?|answer\s*:)\s*(.+)",
    re.IGNORECASE,
)


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """Content of the brace group opening at text[start] == '{', and the index after it; None if unclosed.

    Escaped braces (\\{ and \\}) do not count.
    """
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i], i + 1
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...} / \\fbox{...} in text, or None."""
    best: tuple[int, str] | None = None
    for command in _BOX_COMMANDS:
        pos = text.rfind(command)
        while pos != -1:
            after = pos + len(command)
            rest = text[after:]
            stripped = rest.lstrip()
            if stripped.startswith("{"):
                group = _braced(text, after + len(rest) - len(stripped))
                if group is not None:
                    content = group[0]
                    if best is None or pos > best[0]:
                        best = (pos, content)
                    break
            elif rest[:1] == " " and stripped and command == "\\boxed":  # "\boxed 5"
                token = re.match(r"[^\s$]+", stripped)
                if token:
                    if best is None or pos > best[0]:
                        best = (pos, token.group(0))
                    break
            pos = text.rfind(command, 0, pos)
    if best is None:
        return None
    content = best[1].strip()
    return content or None


def _clean_tail(value: str) -> str | None:
    """Strip math delimiters, bold markers and trailing sentence punctuation around an answer."""
    value = value.strip().rstrip(" .;,")
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")):
        if value.startswith(left) and value.endswith(right) and len(value) >= len(left) + len(right):
            value = value[len(left):len(value) - len(right)].strip().rstrip(" .;,")
    return value or None


def extract_answer(text: str | None) -> str | None:
    """The final answer in a response, or None when there is nothing parsable.

    \\boxed/\\fbox first (last occurrence, nested braces), then GSM8K "#### x", then a final
    "The answer is x" / "Final answer: x" phrase (its last occurrence, up to the end of that line).
    """
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    hashes = _HASH_RE.findall(text)
    if hashes:
        value = _clean_tail(hashes[-1])
        if value is not None:
            return value.replace(",", "") if re.fullmatch(r"-?[\d,]+(\.\d+)?", value) else value
    phrases = _PHRASE_RE.findall(text)
    if phrases:
        return _clean_tail(phrases[-1])
    return None


def gold_text(gold: str | float) -> str:
    """A gold answer as text; integral floats (AMC's 27.0) become integers ("27")."""
    if isinstance(gold, float) and gold.is_integer():
        return str(int(gold))
    return str(gold)

"""Extract the final answer from a model response (pure string functions, no sympy).

Every function here is linear in the length of the text (a 1 MB repetition loop costs milliseconds),
so extraction can run in the parent process, outside the grading timeout.

Extraction modes (`extract_answer(text, mode)`, named in each eval JSON and under each table):
- `boxed`:    the PW-OPSD evaluator's rule (eval/evaluate_math.py): the content of the LAST
              `\\boxed{...}` only; no box, or a last box left unclosed, means no answer (INVALID).
- `strict`:   the last complete `\\boxed{...}` / `\\fbox{...}`, else the last `#### x`, else the last
              final-answer phrase ("The answer is x", "Final answer: x", "Answer: x"), else the last
              `A: x` line (GPT-3-era GSM8K outputs).
- `flexible`: `strict`, else the last number in the text (lm-evaluation-harness's flexible-extract).
- `first_hash`: the CoT-filter seed's generation script and score.py: the FIRST `#### x` line of the
              generation (what follows its last "####"), else the last non-empty line of the text.
"""

from __future__ import annotations

import re

MODES = ("boxed", "strict", "flexible", "first_hash")
DEFAULT_MODE = "strict"

_BOX_RE = re.compile(r"\\(?:boxed|fbox)")
_HASH_RE = re.compile(r"####\s*([^\n]*)")
_FIRST_HASH_RE = re.compile(r"####\s*([^\n]+)")  # the seed's split_prediction pattern (\s spans newlines)
_PHRASE_RE = re.compile(
    r"(?:the\s+final\s+answer\s+is|the\s+answer\s+is|final\s+answer\s*(?:is)?\s*:?|answer\s*:)\s*([^\n]*)",
    re.IGNORECASE,
)
_A_LINE_RE = re.compile(r"^[ \t]*A:[ \t]*([^\n]*)", re.MULTILINE)
_BRACE_TOKEN_RE = re.compile(r"\\.|[{}]", re.DOTALL)  # an escape pair, or a brace
_BRACE_RE = re.compile(r"[{}]")
_NUMBER_RE = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _closing_braces(text: str) -> dict[int, int]:
    """Index of each '{' -> index of its matching '}', in one pass; escaped braces (\\{, \\}) skipped."""
    match: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_TOKEN_RE.finditer(text):
        ch = m.group(0)
        if ch == "{":
            stack.append(m.start())
        elif ch == "}" and stack:
            match[stack.pop()] = m.start()
    return match


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...} / \\fbox{...} in text (braces may nest), or None.

    `\\boxed 5` without braces counts too. Linear: braces are matched once for the whole text.
    """
    starts = list(_BOX_RE.finditer(text))
    if not starts:
        return None
    match = _closing_braces(text)
    for m in reversed(starts):
        rest_start = m.end()
        j = rest_start
        while j < len(text) and text[j].isspace():
            j += 1
        if j < len(text) and text[j] == "{":
            if j in match:
                content = text[j + 1 : match[j]].strip()
                return content or None
        elif j > rest_start and j < len(text) and m.group(0) == "\\boxed":  # "\boxed 5"
            token = re.match(r"[^\s$]+", text[j : j + 200])
            if token:
                return token.group(0)
    return None


def pwopsd_boxed(text: str) -> str | None:
    """evaluate_math.py's extract_boxed_answer: the content of the last `\\boxed{` only, or None.

    Its brace count has no escapes; `\\boxed 5` and a last box left open give None (no fallback to an
    earlier box); an empty box gives "" (formatted, never correct).
    """
    idx = text.rfind("\\boxed")
    if idx < 0 or not text.startswith("\\boxed{", idx):
        return None
    depth = 0
    for m in _BRACE_RE.finditer(text, idx + len("\\boxed")):
        depth += 1 if m.group(0) == "{" else -1
        if depth == 0:
            return text[idx + len("\\boxed{") : m.start()].strip()
    return None


def _clean_tail(value: str) -> str | None:
    """Strip math delimiters, bold markers and trailing sentence punctuation around an answer."""
    value = value.strip().rstrip(" .;,")
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")):
        if value.startswith(left) and value.endswith(right) and len(value) >= len(left) + len(right):
            value = value[len(left) : len(value) - len(right)].strip().rstrip(" .;,")
    return value or None


def _drop_thousands(value: str) -> str:
    """ "1,234" -> "1234"; a list such as "-2,1" or "1,2,3" is left alone."""
    return value.replace(",", "") if _THOUSANDS_RE.fullmatch(value) else value


def _last_clean(matches) -> str | None:
    """The last match (of an iterator of regex matches) that cleans to a non-empty answer."""
    found = None
    for m in matches:
        value = _clean_tail(m.group(1))
        if value is not None:
            found = value
    return found


def _strict(text: str) -> str | None:
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    hashed = _last_clean(_HASH_RE.finditer(text))
    if hashed is not None:
        return _drop_thousands(hashed)
    phrase = _last_clean(_PHRASE_RE.finditer(text))
    if phrase is not None:
        return phrase
    a_line = _last_clean(_A_LINE_RE.finditer(text))
    if a_line is not None:
        return _drop_thousands(a_line)
    return None


def _last_number(text: str) -> str | None:
    last = None
    for match in _NUMBER_RE.finditer(text):
        last = match
    if last is None:
        return None
    return _drop_thousands(last.group(0).replace("$", "").rstrip(","))


def _first_hash(text: str) -> str | None:
    """The seed's generation script keeps "#### x" for the first `####\\s*x` line (its split_prediction),
    else the whole generation; score.py's extract_final_answer then takes what follows the LAST "####"
    of that, and when nothing does, the last non-empty line."""
    m = _FIRST_HASH_RE.search(text)
    content = f"#### {m.group(1).strip()}" if m else text
    if "####" in content:
        tail = content.rsplit("####", 1)[1].strip()
        if tail:
            return tail
    for line in reversed(content.splitlines()):
        if line.strip():
            return line.strip()
    return None


def extract_answer(text: str | None, mode: str = DEFAULT_MODE) -> str | None:
    """The final answer in a response under an extraction mode (see the module docstring), or None."""
    if mode not in MODES:
        raise ValueError(f"unknown extraction mode {mode!r}; known: {', '.join(MODES)}")
    if not text:
        return None
    if mode == "boxed":
        return pwopsd_boxed(text)
    if mode == "first_hash":
        return _first_hash(text)
    answer = _strict(text)
    if answer is None and mode == "flexible":
        answer = _last_number(text)
    return answer


def gold_text(gold: str | float) -> str:
    """A gold answer as text; integral floats (AMC's 27.0) become integers ("27")."""
    if isinstance(gold, float) and gold.is_integer():
        return format(gold, ".0f")
    return str(gold)

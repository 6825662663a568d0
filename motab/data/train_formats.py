"""Training sets in their public releases' own fields -> problems.jsonl rows.

Each format names the fields of one release and reads a line into {"id", "input", "answer",
"solution", "source"}; a missing or mistyped field stops the stage with file:line:field.

- limo:          question, answer, solution (GAIR/LIMO; also any LIMO-shaped file), ids from
                 id / unique_id / idx when present. See motab.data.prepare.normalize_rows.
- gsm8k:         question, answer = reasoning ending "#### N" (openai/gsm8k, main, train split).
                 answer = N (commas dropped); solution = the whole answer text, "#### N" line
                 included, so SFT on it teaches GSM8K's answer format (the CoT-filter seed's
                 Strong-Baseline trains on these solutions).
- deepmath:      question, final_answer, difficulty, topic, r1_solution_1..3 (zwhe99/DeepMath-103K).
                 answer = final_answer; solution = r1_solution_1 (DeepSeek-R1's first solution).
- openthoughts3: conversations [{"from": "human"|"gpt", "value"}], difficulty, source, domain
                 (open-thoughts/OpenThoughts3-1.2M). input = the first human turn, solution = the
                 gpt turn after it (QwQ-32B's reasoning trace); answer = the last \\boxed{} of that
                 trace, "" when it has none (code and some science rows: only SFT reads them).
- opsd:          problem, solution (siyanzhao/Openthoughts_math_30k_opsd, the OPSD release's
                 training prompts; PW-OPSD trains on the same set). answer = the `answer` field
                 when a copy carries one, else the last \\boxed{} of the solution.
Ids of the new formats are "<dataset>-<line-1:07d>" (1.2M rows keep their file order by id).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from motab.jsonio import DataError, iter_jsonl

_GSM8K_RE = re.compile(r"####\s*(\S[^\n]*?)\s*$")
_BOXED_RE = re.compile(r"\\boxed\{")
_BRACE_RE = re.compile(r"[{}]")

Row = dict
Reader = Callable[[dict, str, int], tuple[str, str, str]]  # raw line -> (input, answer, solution)


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...} (braces may nest), or None. Kept here rather than
    imported from motab.grading.extraction, so editing grading does not rerun data preparation.

    One pass over the braces (a stack of open positions), so a 1 MB run of unclosed `\\boxed{` is linear.
    """
    closing: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_RE.finditer(text):
        if m.group(0) == "{":
            stack.append(m.start())
        elif stack:
            closing[stack.pop()] = m.start()
    for m in reversed(list(_BOXED_RE.finditer(text))):
        start = m.end() - 1  # the "{"
        if start in closing:
            return text[start + 1 : closing[start]].strip() or None
    return None


def _text(raw: dict, field: str, path: str, line: int, what: str = "a non-empty string") -> str:
    if field not in raw:
        raise DataError(path, line, field, "missing field")
    value = raw[field]
    if not isinstance(value, str) or not value.strip():
        raise DataError(path, line, field, f"expected {what}, found {value!r:.60}")
    return value


def _gsm8k(raw: dict, path: str, line: int) -> tuple[str, str, str]:
    question = _text(raw, "question", path, line)
    answer = _text(raw, "answer", path, line, "a reasoning string ending '#### N'")
    match = _GSM8K_RE.search(answer)
    if not match:
        raise DataError(path, line, "answer", f"expected a final line '#### N', found {answer[-60:]!r}")
    return question, match.group(1).replace(",", ""), answer.strip()


def _deepmath(raw: dict, path: str, line: int) -> tuple[str, str, str]:
    question = _text(raw, "question", path, line)
    answer = _text(raw, "final_answer", path, line)
    difficulty = raw.get("difficulty")
    if "difficulty" not in raw:
        raise DataError(path, line, "difficulty", "missing field")
    if isinstance(difficulty, bool) or not isinstance(difficulty, (int, float)):
        raise DataError(path, line, "difficulty", f"expected a number, found {difficulty!r:.60}")
    _text(raw, "topic", path, line)
    solutions = [_text(raw, f"r1_solution_{i}", path, line) for i in (1, 2, 3)]
    return question, answer.strip(), solutions[0]


def _openthoughts3(raw: dict, path: str, line: int) -> tuple[str, str, str]:
    if "conversations" not in raw:
        raise DataError(path, line, "conversations", "missing field")
    turns = raw["conversations"]
    if not isinstance(turns, list):
        raise DataError(path, line, "conversations", f"expected a list of {{from, value}}, found {turns!r:.60}")
    for i, turn in enumerate(turns):
        where = f"conversations[{i}]"
        if (
            not isinstance(turn, dict)
            or not isinstance(turn.get("from"), str)
            or not isinstance(turn.get("value"), str)
        ):
            raise DataError(path, line, where, f'expected {{"from": str, "value": str}}, found {turn!r:.60}')
    human = next((i for i, t in enumerate(turns) if t["from"] == "human"), None)
    if human is None or not turns[human]["value"].strip():
        raise DataError(path, line, "conversations", "expected a non-empty 'human' turn (the problem)")
    gpt = next((i for i, t in enumerate(turns) if i > human and t["from"] == "gpt"), None)
    if gpt is None or not turns[gpt]["value"].strip():
        raise DataError(path, line, "conversations", "expected a non-empty 'gpt' turn after the 'human' turn")
    response = turns[gpt]["value"]
    return turns[human]["value"], (last_boxed(response) or "").strip(), response


def _opsd(raw: dict, path: str, line: int) -> tuple[str, str, str]:
    problem = _text(raw, "problem", path, line)
    solution = _text(raw, "solution", path, line)
    if raw.get("answer") is not None:
        given = raw["answer"]
        if isinstance(given, bool) or not isinstance(given, (str, int, float)) or not str(given).strip():
            raise DataError(path, line, "answer", f"expected a non-empty answer, found {given!r:.60}")
        return problem, str(given).strip(), solution
    boxed = last_boxed(solution)
    if boxed is None or not boxed.strip():
        raise DataError(path, line, "solution", "expected a final \\boxed{...} answer (no `answer` field either)")
    return problem, boxed.strip(), solution


READERS: dict[str, Reader] = {"gsm8k": _gsm8k, "deepmath": _deepmath, "openthoughts3": _openthoughts3, "opsd": _opsd}


def iter_rows(path: str, fmt: str, source: str) -> Iterator[Row]:
    """problems.jsonl rows of a training file in one of READERS' formats, in file order."""
    reader = READERS[fmt]
    for line, raw in iter_jsonl(path):
        question, answer, solution = reader(raw, path, line)
        yield {
            "id": f"{source}-{line - 1:07d}",
            "input": question.strip(),
            "answer": answer,
            "solution": solution,
            "source": source,
        }

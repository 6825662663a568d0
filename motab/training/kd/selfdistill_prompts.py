"""Self-distillation prompts as the PW-OPSD release writes them (code/data_collator.py, reason_first off).

The student sees "Problem: {problem}" and the boxed-answer instruction, rendered with thinking OFF;
the teacher sees the problem, the reference solution between markers, the release's transition
sentence and the same instruction, rendered with thinking ON. The wording must match the release
token for token (it is what the teacher is conditioned on), so it is reproduced here exactly.
`render` applies a chat template with an explicit enable_thinking and, like the release, closes a
<think> that a template opens regardless (DeepSeek-R1-Distill) when thinking is off.
"""

from __future__ import annotations

import re

BOXED = "Please reason step by step, and put your final answer within \\boxed{}."
PWOPSD_TRANSITION = (
    "\n\nAfter reading the reference solution above, make sure you truly understand the reasoning "
    "behind each step — do not copy or paraphrase it. Now, using your own words and independent "
    "reasoning, derive the same final answer to the problem above. Think step by step, explore "
    "different approaches, and don't be afraid to backtrack or reconsider if something doesn't "
    "work out:\n"
)
OPEN_THINK = re.compile(r"<think\s*>\s*$")


def _with_last_user(messages: list[dict], content: str) -> list[dict]:
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return [*messages[:last], {"role": "user", "content": content}, *messages[last + 1 :]]


def _problem(messages: list[dict]) -> str:
    return [m for m in messages if m["role"] == "user"][-1]["content"]


def pwopsd_student_messages(messages: list[dict]) -> list[dict]:
    """The release's student turn: "Problem: {problem}\\n\\n" + the boxed-answer instruction."""
    return _with_last_user(messages, f"Problem: {_problem(messages)}\n\n{BOXED}")


def pwopsd_teacher_messages(messages: list[dict], solution: str) -> list[dict]:
    """The release's teacher turn: problem, reference solution between markers, transition, instruction."""
    content = (
        f"Problem: {_problem(messages)}\n\nHere is a reference solution to this problem:\n"
        f"=== Reference Solution Begin ===\n{solution}\n=== Reference Solution End ===\n"
        f"{PWOPSD_TRANSITION}\n{BOXED}"
    )
    return _with_last_user(messages, content)


def render(tokenizer, conversation: list[dict], thinking: bool | None) -> str:
    """The conversation as prompt text (generation prompt added); thinking None: the template's default."""
    extra = {} if thinking is None else {"enable_thinking": thinking}
    text = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False, **extra)
    if thinking is False and OPEN_THINK.search(text):
        text += "</think>\n\n"
    return text

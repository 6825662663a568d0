"""KD prompts: read the prompt files, word the self-teacher's privileged conversations (as the
OPSD or the PW-OPSD release does), render a conversation as prompt text, and order each teacher's
prompts into the steps' batches.

Self-distillation wording. OPSD (github.com/siyan-zhao/OPSD, data_collator.py, reason_first=False):
the teacher's last user turn is the student's, the reference solution and a transition sentence.
PW-OPSD (SaFo-Lab/PW-OPSD, code/data_collator.py, reason_first off): the student sees
"Problem: {problem}" and the boxed-answer instruction, rendered with thinking OFF; the teacher sees
the problem, the reference solution between markers, the release's transition sentence and the
same instruction, rendered with thinking ON. The wording must match the releases token for token
(it is what the teacher is conditioned on), so it is reproduced here exactly. `render` applies a
chat template with an explicit enable_thinking and, like PW-OPSD, closes a <think> that a template
opens regardless (DeepSeek-R1-Distill) when thinking is off.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from motab.jsonio import DataError, iter_jsonl, require
from motab.training.kd.config import SELF, KDConfig, RunOptions

BOXED = "Please reason step by step, and put your final answer within \\boxed{}."
TRANSITION = (  # OPSD's
    "\n\nAfter understanding the reference solution and the rationale behind each step, now articulate "
    "your own step-by-step reasoning that derives the same final answer to the problem below:\n"
)
PWOPSD_TRANSITION = (
    "\n\nAfter reading the reference solution above, make sure you truly understand the reasoning "
    "behind each step — do not copy or paraphrase it. Now, using your own words and independent "
    "reasoning, derive the same final answer to the problem above. Think step by step, explore "
    "different approaches, and don't be afraid to backtrack or reconsider if something doesn't "
    "work out:\n"
)
OPEN_THINK = re.compile(r"<think\s*>\s*$")


def read_prompts(path: str | Path, need_solution: bool = False, style: str = "opsd") -> list[list[dict]]:
    """KDFlow prompt rows {"id", "messages": [{"role", "content"}], ...} -> list of message lists.

    need_solution (self-distillation): every row needs a string "solution", and each conversation
    is returned as the teacher's privileged conversation, `teacher_messages(messages, solution)`,
    in a second list: (student conversations, teacher conversations). style "pwopsd": both sides
    worded as the PW-OPSD release (pwopsd_student_messages, pwopsd_teacher_messages).
    """
    conversations, privileged = [], []
    for line, row in iter_jsonl(path):
        require(row, "id", (str, int), path, line)
        messages = require(row, "messages", list, path, line)
        if not messages:
            raise DataError(path, line, "messages", "expected at least one message, found an empty list")
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise DataError(path, line, f"messages[{i}]", f"expected an object, found {type(message).__name__}")
            require(message, "role", str, path, line)
            require(message, "content", str, path, line)
        conversations.append([{"role": m["role"], "content": m["content"]} for m in messages])
        if need_solution:
            solution = require(row, "solution", str, path, line, nullable=True)
            if solution is None:
                raise DataError(path, line, "solution", "self-distillation needs a reference solution, found null")
            privileged.append(
                teacher_messages(conversations[-1], solution)
                if style == "opsd"
                else pwopsd_teacher_messages(conversations[-1], solution)
            )
    if not conversations:
        raise DataError(path, None, None, "no prompts found")
    if style == "pwopsd":
        conversations = [pwopsd_student_messages(c) for c in conversations]
    return (conversations, privileged) if need_solution else conversations


def _with_last_user(messages: list[dict], content: str) -> list[dict]:
    """The conversation with its last user turn's content replaced."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return [*messages[:last], {"role": "user", "content": content}, *messages[last + 1 :]]


def _problem(messages: list[dict]) -> str:
    """The last user turn's content (the problem, in our prompt files)."""
    return [m for m in messages if m["role"] == "user"][-1]["content"]


def teacher_messages(messages: list[dict], solution: str) -> list[dict]:
    """The privileged teacher conversation: the last user turn rewritten as OPSD's teacher prompt.

    OPSD's wording, with {problem} = the student's user message (which in our prompt files may
    already carry an answer-format instruction): problem, "Here is a reference solution to this
    problem:", the solution, the transition sentence, then the boxed-answer instruction.
    """
    content = (
        f"{_problem(messages)}\n\nHere is a reference solution to this problem:\n{solution}\n{TRANSITION}\n{BOXED}"
    )
    return _with_last_user(messages, content)


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


def prompt_batch(order: list[int], step: int, batch: int) -> list[int]:
    """Indices of the prompts for 1-based `step`: the next `batch` of `order`, cycling."""
    start = (step - 1) * batch
    return [order[(start + i) % len(order)] for i in range(batch)]


@dataclass
class PromptSource:
    """One teacher with its own prompts (Tinker's DistillationDatasetConfig): per_step prompts a step."""

    teacher: str  # checkpoint folder, or SELF
    prompts: str  # prompt JSONL
    per_step: int
    conversations: list[list[dict]]  # the student's conversations
    privileged: list[list[dict]] | None  # the teacher's (self-distillation), else None
    order: list[int]  # the prompts shuffled by the seed; steps take the next per_step


def prompt_sources(config: KDConfig, options: RunOptions) -> list[PromptSource]:
    """The run's (teacher, prompts, prompts per step) triples with their prompts read, in the config's
    prompt_order (shuffled by its seed, or the file's)."""
    sources = []
    for teacher, path, per_step in zip(options.teachers, options.prompts, options.prompts_per_step):
        if teacher == SELF:
            conversations, privileged = read_prompts(path, need_solution=True, style=config.prompt_style)
        else:
            conversations, privileged = read_prompts(path), None
        order = list(range(len(conversations)))
        if config.prompt_order == "shuffled":
            random.Random(config.seed).shuffle(order)
        sources.append(PromptSource(teacher, path, per_step, conversations, privileged, order))
    return sources


def cut_prompt(tokenizer, text: str, max_tokens: int) -> str:
    """The text's first max_tokens tokens, decoded (Tinker's PromptOnlyDataset._truncate_prompt); 0 = all."""
    tokens = tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.decode(tokens[:max_tokens]) if 0 < max_tokens < len(tokens) else text


def cut_prompts(sources: list[PromptSource], tokenizer, max_tokens: int) -> None:
    """Cut every user message of the student's conversations to max_tokens tokens (in place)."""
    for source in sources if max_tokens else []:
        for conversation in source.conversations:
            for message in conversation:
                if message["role"] == "user":
                    message["content"] = cut_prompt(tokenizer, message["content"], max_tokens)


def source_batches(sources: list[PromptSource], step: int) -> list[list[int]]:
    """Each source's prompt indices for 1-based `step` (the batch concatenates them in this order)."""
    return [prompt_batch(source.order, step, source.per_step) for source in sources]


def check_shares(sources: list[PromptSource], processes) -> None:
    """Every process takes the same number of each teacher's prompts a step."""
    for source in sources:
        if source.per_step % processes.world:
            raise ValueError(
                f"prompts_per_step {source.per_step} ({source.prompts}) is not a multiple of the "
                f"{processes.world} training processes; each process takes an equal share"
            )

"""The toy tokenizer splits text where Qwen2/Qwen3's does, so a context that ends at a step boundary
tokenizes as a prefix of the whole text: what the step methods (MOTAB, SKD, stepwise teacher-only)
rely on when they hand a model the steps so far and it continues them."""

from __future__ import annotations

import pytest

from motab.synthesis.motab_method import REVISE_TOKEN
from motab.synthesis.steps import STEP_JOIN
from motab.toy.pretrain import released_context
from motab.toy.tasks import TaskSpec, generate_problems
from motab.toy.tokenizer import chat_text, train_tokenizer

ROWS = generate_problems(TaskSpec(), n=300, seed=0)
CHECKED = ROWS[:40]  # every shape of step boundary occurs in a few dozen problems


def _texts_with_step_boundaries() -> list[str]:
    """Every shape of text a toy model is given or writes: chat and raw solutions, released contexts,
    and rows as MOTAB writes them (student steps, "However,", the teacher's rest)."""
    texts = []
    for row in CHECKED:
        question, solution = row["question"], row["solution"]
        steps = solution.split(STEP_JOIN)
        texts.append(chat_text(question, solution))
        texts.append(solution)
        texts.append("".join(released_context(question, solution, k=len(steps))))
        texts.append(STEP_JOIN.join(steps[:-1] + [REVISE_TOKEN, solution]))
    return texts


def _prefix_breaks(tokenizer, texts: list[str]) -> list[str]:
    """The step-boundary prefixes whose tokens are not a prefix of the whole text's tokens."""
    broken = []
    for text in texts:
        whole = tokenizer(text, add_special_tokens=False)["input_ids"]
        start = 0
        while (at := text.find(STEP_JOIN, start)) >= 0:
            start = at + len(STEP_JOIN)
            prefix = tokenizer(text[:start], add_special_tokens=False)["input_ids"]
            if whole[: len(prefix)] != prefix:
                broken.append(repr(text[:start][-30:]))
    return broken


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return [chat_text(r["question"], r["solution"]) for r in ROWS]


def test_a_context_ending_at_a_step_boundary_tokenizes_as_a_prefix_of_the_whole_text(corpus, tmp_path):
    tokenizer = train_tokenizer(corpus, vocab_size=512, out_dir=tmp_path)
    assert _prefix_breaks(tokenizer, _texts_with_step_boundaries()) == []


def test_gpt2s_byte_level_split_breaks_that_prefix_which_is_why_the_toy_left_it(corpus, tmp_path):
    # GPT-2's split merges ".\n\n" at the end of a text into other tokens than before "The": the
    # defect this tokenizer fixes (the check above can fail)
    tokenizer = train_tokenizer(corpus, vocab_size=512, out_dir=tmp_path, pre_tokenizer="gpt2")
    assert _prefix_breaks(tokenizer, _texts_with_step_boundaries())


def test_the_step_boundary_is_one_token_as_in_qwens_vocabulary(corpus, tmp_path):
    tokenizer = train_tokenizer(corpus, vocab_size=512, out_dir=tmp_path)
    assert tokenizer.convert_ids_to_tokens(tokenizer(".\n\n", add_special_tokens=False)["input_ids"]) == [".ĊĊ"]


def test_an_unknown_pre_tokenizer_is_refused_by_name(corpus, tmp_path):
    with pytest.raises(ValueError, match="pre_tokenizer: expected one of"):
        train_tokenizer(corpus, vocab_size=512, out_dir=tmp_path, pre_tokenizer="bert")

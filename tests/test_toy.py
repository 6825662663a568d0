"""The toy task and tokenizer: the study's inputs that the pipeline builds itself."""

import re

import pytest

from motab.toy.tasks import TaskSpec, generate_problems
from motab.toy.tokenizer import chat_text


def test_solutions_are_correct_step_by_step_arithmetic():
    for row in generate_problems(TaskSpec(num_ops=3), n=200, seed=1):
        steps = row["solution"].split("\n\n")
        assert len(steps) == 4  # three operations, then the answer line
        for step in steps[:-1]:
            a, op, b, result = re.fullmatch(r"(\d+) ([+-]) (\d+) = (-?\d+)\.", step).groups()
            assert int(result) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        assert steps[-1] == f"The answer is \\boxed{{{row['answer']}}}."
        assert eval(row["question"].removeprefix("Compute ").rstrip(".")) == int(row["answer"])


def test_splits_are_disjoint_and_seeded():
    test = generate_problems(TaskSpec(), n=50, seed=2)
    train = generate_problems(TaskSpec(), n=300, seed=1, exclude={r["question"] for r in test})
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert generate_problems(TaskSpec(), n=50, seed=2) == test
    assert generate_problems(TaskSpec(), n=50, seed=3) != test


def test_asking_for_more_problems_than_exist_fails_clearly():
    with pytest.raises(ValueError, match="distinct problems"):
        generate_problems(TaskSpec(num_ops=1, min_operand=1, max_operand=2), n=50, seed=0)


def test_tokenizer_chat_template_matches_llamafactory_qwen(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "Compute 1 + 2."}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == chat_text("Compute 1 + 2.")
    # LLaMA-Factory's `qwen` template: default system prompt, then the user turn.
    from llamafactory.data.template import TEMPLATES

    qwen = TEMPLATES["qwen"]
    assert rendered.startswith("<|im_start|>system\n" + qwen.default_system + "<|im_end|>\n")
    assert tok.eos_token == "<|im_end|>" and tok.padding_side == "left"


def test_tokenizer_round_trips_real_benchmark_text(tiny_model_dir, shared_data):
    from transformers import AutoTokenizer

    from motab.jsonio import read_jsonl

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for row in read_jsonl(shared_data / "math500" / "test.jsonl")[:50]:
        ids = tok(row["problem"], add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == row["problem"]

"""The toy models learn the raw-question prompt the MOTAB release's step loops send in
`compat: released`, as the loops build it: steps without the "." the stop string trims."""

from __future__ import annotations

from motab.synthesis.steps import STEP_JOIN
from motab.toy.pretrain import encode_examples, released_context

SOLUTION = "7 - 7 = 0.\n\n0 + 9 = 9.\n\nThe answer is \\boxed{9}."
QUESTION = "Compute 7 - 7 + 9."


def test_the_raw_question_is_followed_by_the_whole_solution():
    assert released_context(QUESTION, SOLUTION, 0) == (QUESTION, STEP_JOIN + SOLUTION)


def test_accepted_steps_lose_their_period_and_the_answer_line_keeps_it():
    assert released_context(QUESTION, SOLUTION, 2) == (
        "Compute 7 - 7 + 9.\n\n7 - 7 = 0\n\n0 + 9 = 9\n\n",
        "The answer is \\boxed{9}.",
    )
    # after the answer line the loop asks for one more step: the model should stop at once
    context, target = released_context(QUESTION, SOLUTION, 3)
    assert context.endswith("The answer is \\boxed{9}.\n\n") and target == ""


def test_each_problem_is_trained_in_both_forms_ending_in_eos(toy_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(toy_tokenizer_dir)
    rows = [{"input": QUESTION, "solution": SOLUTION}] * 4
    examples = encode_examples(tok, rows)
    assert len(examples) == 8
    raw = examples[1::2]
    for k, (ids, n_prompt) in enumerate(raw):
        context, target = released_context(QUESTION, SOLUTION, k)
        assert ids[:n_prompt] == tok(context, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids[n_prompt:-1]) == target and ids[-1] == tok.eos_token_id
    chat_ids, chat_prompt = examples[0]
    assert "<|im_start|>assistant" in tok.decode(chat_ids[:chat_prompt])

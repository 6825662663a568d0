"""GPQA-Diamond (multiple choice) and EvalScope's AMC file: rows, grader, and the same accuracy as
EvalScope 1.14.1's own scorer (its gpqa_diamond / amc adapters, `calculate_metrics`, with the motab
study's `remove_until: </think>` filter) on the same synthetic responses. The real GPQA file is gated
and AMC 2022-24 is not shipped, so the rows are synthetic, in the releases' field names."""

from __future__ import annotations

import json

import pytest

from motab.data.benchmarks import load_benchmark
from motab.data.gpqa import load_gpqa, shuffle_choices
from motab.evaluation.grade_responses import main as grade_main
from motab.grading.multiple_choice import extract_choice
from motab.jsonio import DataError, write_jsonl

QUESTIONS = [
    ("Which particle mediates the electromagnetic force?", "Photon", ["Gluon", "W boson", "Graviton"]),
    ("What is the oxidation state of Mn in KMnO4?", "+7", ["+2", "+4", "+6"]),
    ("Which organelle holds the Krebs cycle?", "Mitochondrial matrix", ["Cytosol", "Nucleus", "Golgi apparatus"]),
    ("What is the spin of a deuteron ground state?", "1", ["0", "1/2", "3/2"]),
]
GPQA_ROWS = [
    {
        "Question": q,
        "Correct Answer": c,
        "Incorrect Answer 1": w[0],
        "Incorrect Answer 2": w[1],
        "Incorrect Answer 3": w[2],
        "Record ID": f"rec{i}",
    }
    for i, (q, c, w) in enumerate(QUESTIONS)
]


def responses_for(letter: str) -> list[str]:
    """Eight responses in the forms a reasoning model writes, right and wrong, with a think block."""
    wrong = next(x for x in "ABCD" if x != letter)
    return [
        f"Reasoning...\nANSWER: {letter}",
        f"<think>It could be {wrong}. ANSWER: {wrong}</think>\nSo the choice is clear.\nANSWER: {letter}",
        f"<think>ANSWER: {letter}</think>\nOn reflection, ANSWER: {wrong}",
        f"Thus \\boxed{{{letter}}}",
        f"The answer: **{wrong}**",
        f"Answer: ({letter})",
        f"$\\boxed{{\\text{{{wrong}}}}}$",
        f"<think>long thought</think>\n**ANSWER: {letter}**",
    ]


def evalscope_adapter(name: str):
    from evalscope import TaskConfig
    from evalscope.api.registry import get_benchmark

    config = TaskConfig(
        model="m",
        eval_type="openai_api",
        api_url="http://127.0.0.1:1/v1",
        datasets=[name],
        dataset_args={name: {"filters": {"remove_until": "</think>"}, "aggregation": "mean_and_pass_at_k"}},
    )
    return get_benchmark(name, config=config)


def evalscope_scores(adapter, record: dict, responses: list[str]) -> list[float]:
    from evalscope.api.evaluator import TaskState
    from evalscope.api.model import ModelOutput

    sample = adapter.record_to_sample(record)
    return [
        adapter.calculate_metrics(
            TaskState(
                model="m", sample=sample, completed=True, output=ModelOutput.from_content(model="m", content=text)
            )
        ).score.value["accuracy"]
        for text in responses
    ]


def native_samples(tmp_path, problems: list[dict], responses: dict[str, list[str]], *grade_args: str) -> list[dict]:
    write_jsonl(
        tmp_path / "responses.jsonl",
        [
            {
                "id": p["id"],
                "input": p["input"],
                "gold": p["answer"],
                "prompt": p["input"],
                "responses": responses[p["id"]],
                "finish_reasons": ["stop"] * len(responses[p["id"]]),
                "completion_tokens": [1] * len(responses[p["id"]]),
            }
            for p in problems
        ],
    )
    grade_main(
        [
            "--responses",
            str(tmp_path / "responses.jsonl"),
            "--output",
            str(tmp_path / "eval.json"),
            "--run",
            "r",
            "--benchmark",
            "b",
            "--seed",
            "0",
            "--remove-until",
            "</think>",
            *grade_args,
        ]
    )
    return json.loads((tmp_path / "eval.json").read_text())


def test_gpqa_rows_show_evalscopes_choices_and_prompt(tmp_path):
    write_jsonl(tmp_path / "gpqa.jsonl", GPQA_ROWS)
    problems = {p["id"]: p for p in load_benchmark(tmp_path / "gpqa.jsonl", "gpqa_diamond", "gpqa_diamond", count=4)}
    adapter = evalscope_adapter("gpqa_diamond")
    letters = []
    for record in GPQA_ROWS:
        sample = adapter.record_to_sample(record)
        ours = problems[record["Record ID"]]
        assert ours["answer"] == sample.target
        assert ours["input"] == adapter.format_prompt_template(sample)  # the same prompt, letter for letter
        letters.append(sample.target)
    assert len(set(letters)) > 1  # the seeded shuffle moves the correct answer around
    assert shuffle_choices(" Q ", "a", ["b", "c", "d"]) == shuffle_choices("Q", "a ", ["b", "c", "d"])


def test_gpqa_accuracy_through_the_native_grader_equals_evalscopes(tmp_path):
    write_jsonl(tmp_path / "gpqa.jsonl", GPQA_ROWS)
    problems = load_gpqa(tmp_path / "gpqa.jsonl", "gpqa_diamond")
    responses = {p["id"]: responses_for(p["answer"]) for p in problems}
    result = native_samples(tmp_path, problems, responses, "--grader", "multiple_choice")
    adapter = evalscope_adapter("gpqa_diamond")
    expected = {
        record["Record ID"]: evalscope_scores(adapter, record, responses[record["Record ID"]]) for record in GPQA_ROWS
    }
    for sample in result["samples"]:
        assert [float(c) for c in sample["correct"]] == expected[sample["id"]], sample["id"]
    mean = sum(sum(v) for v in expected.values()) / sum(len(v) for v in expected.values())
    assert result["metrics"]["avg@8"] == pytest.approx(mean) and 0 < mean < 1


@pytest.mark.parametrize(
    "text, letter",
    [
        ("ANSWER: C", "C"),
        ("so \\boxed{B}.", "B"),
        ("\\boxed{\\text{(D)}}", "D"),
        ("Answer: **A**", "A"),
        ("\\boxed{A} then later ANSWER: B", "B"),
        ("ANSWER: B ... \\boxed{C}", "C"),  # the last marker wins
        ("ANSWER: [LETTER]", None),
        ("I think it is B", None),
        ("ANSWER: E", None),
        ("", None),
    ],
)
def test_the_letter_of_the_last_box_or_answer_line(text, letter):
    assert extract_choice(text) == letter


def test_a_bad_gpqa_line_names_file_line_and_field(tmp_path):
    rows = [GPQA_ROWS[0], {k: v for k, v in GPQA_ROWS[1].items() if k != "Correct Answer"}]
    write_jsonl(tmp_path / "gpqa.jsonl", rows)
    with pytest.raises(DataError, match=r"gpqa\.jsonl:2:Correct Answer"):
        load_gpqa(tmp_path / "gpqa.jsonl", "gpqa_diamond")


AMC_ROWS = [
    {"problem": "What is $3 \\cdot 9$?", "answer": "27", "year": 2023, "url": "u1"},
    {"problem": "What is $1/4 + 1/4$?", "answer": "\\frac{1}{2}", "year": 2022, "url": "u2"},
    {"problem": "How many primes are below 10?", "answer": "4", "year": 2024, "url": "u3"},
]


def test_amc_file_in_evalscopes_format_grades_as_evalscope_does(tmp_path):
    write_jsonl(tmp_path / "amc.jsonl", AMC_ROWS)
    problems = load_benchmark(tmp_path / "amc.jsonl", "amc", "amc")
    assert [p["answer"] for p in sorted(problems, key=lambda p: p["input"])] == ["4", "\\frac{1}{2}", "27"]
    by_input = {p["input"]: p for p in problems}
    responses = {}
    for row in AMC_ROWS:
        gold = row["answer"]
        responses[by_input[row["problem"]]["id"]] = [
            f"So \\boxed{{{gold}}}.",
            "<think>\\boxed{" + gold + "}</think> I get \\boxed{99}",
            f"<think>try 99</think>Final: \\boxed{{{gold}}}",
            "\\boxed{100}",
        ]
    result = native_samples(tmp_path, problems, responses)
    adapter = evalscope_adapter("amc")
    for row in AMC_ROWS:
        pid = by_input[row["problem"]]["id"]
        sample = next(s for s in result["samples"] if s["id"] == pid)
        assert (
            [float(c) for c in sample["correct"]]
            == evalscope_scores(adapter, row, responses[pid])
            == [1.0, 0.0, 1.0, 0.0]
        )


def test_amc_line_without_year_names_the_field(tmp_path):
    write_jsonl(tmp_path / "amc.jsonl", [{"problem": "p", "answer": "1"}])
    with pytest.raises(DataError, match="year"):
        load_benchmark(tmp_path / "amc.jsonl", "amc", "amc")

"""Golden test: eval-grade under the pwopsd study's grading (boxed extraction, pwopsd equivalence)
gives PW-OPSD's evaluator's numbers on a synthetic set.

How the golden numbers were made (code not copied; figures only): SaFo-Lab/PW-OPSD at commit
35303e00ec47fce345d3531322268354fb211e70, eval/evaluate_math.py's `extract_boxed_answer` and
`grade_answer` (the two function definitions executed alone, since the file imports vLLM) and
eval/recompute_majn.py's `majority_vote_fixed` (the evaluator's Maj@N clustering, both directions of
grade_answer, INVALID cluster for unboxed answers; given evaluate_math's grade_answer), run once with
math-verify 0.9.0 on tests/fixtures/pwopsd_eval_set.py's SET: per problem, predicted = the boxed
answer or "[No boxed answer found]", formatted = a box was found, correct = grade_answer(pred, gold);
Pass@12 = share of problems with a correct sample, Avg@12 = correct samples / all samples, Maj@12 =
share of problems whose majority cluster is correct. The release pins math-verify 0.8.0.
"""

from __future__ import annotations

import json

from fixtures.pwopsd_eval_set import SET

from motab.evaluation.grade_responses import main as eval_grade_main
from motab.evaluation.metrics import maj_correct
from motab.jsonio import write_jsonl

T, F = True, False
# evaluate_math.py's per-sample `correct` and per-problem `majority_vote_correct`
RELEASE_CORRECT = [
    [T, T, T, F, T, F, F, F, T, T, F, T],
    [F, F, F, F, F, F, F, T, T, T, T, T],
    [T, T, F, F, F, F, T, F, F, T, T, F],
    [T, T, F, T, T, F, F, F, F, F, F, F],
    [T, T, F, T, T, F, F, F, F, T, F, T],
    [T, T, T, F, F, F, F, F, F, F, F, F],
    [T, T, F, F, F, T, F, T, T, F, F, T],
    [F, F, T, T, F, T, F, T, F, F, F, F],
    [T, F, F, F, T, F, F, F, T, F, F, F],
]
RELEASE_MAJ = [T, F, T, F, T, F, T, F, F]
RELEASE_METRICS = {"pass@12": 1.0, "avg@12": 0.398148, "maj@12": 0.444444}  # 100%, 39.81%, 44.44% in its JSON


def run_eval_grade(tmp_path, *extra: str) -> dict:
    rows = [
        {
            "id": f"p{i}",
            "input": "q",
            "prompt": "q",
            "gold": gold,
            "responses": responses,
            "finish_reasons": ["stop"] * 12,
            "completion_tokens": [1] * 12,
        }
        for i, (gold, responses) in enumerate(SET)
    ]
    write_jsonl(tmp_path / "responses.jsonl", rows)
    out = tmp_path / "eval.json"
    assert (
        eval_grade_main(
            [
                "--responses",
                str(tmp_path / "responses.jsonl"),
                "--output",
                str(out),
                "--run",
                "r",
                "--benchmark",
                "b",
                "--seed",
                "0",
                *extra,
            ]
        )
        == 0
    )
    return json.loads(out.read_text())


def test_pwopsd_grading_equals_the_release_evaluator(tmp_path):
    result = run_eval_grade(tmp_path, "--extraction", "boxed", "--equivalence", "pwopsd")
    assert [s["correct"] for s in result["samples"]] == RELEASE_CORRECT
    assert [maj_correct(s["correct"], s["cluster"]) for s in result["samples"]] == RELEASE_MAJ
    assert {key: result["metrics"][key] for key in RELEASE_METRICS} == RELEASE_METRICS
    assert result["extraction"] == "boxed" and result["equivalence"] == "pwopsd"


def test_default_grading_differs_from_the_release(tmp_path):
    """The pipeline's default (strict extraction) counts unboxed answers; the release does not."""
    result = run_eval_grade(tmp_path, "--extraction", "strict,flexible,boxed")
    assert result["metrics"]["avg@12"] > RELEASE_METRICS["avg@12"]
    assert result["extraction"] == "strict"
    assert sorted(result["metrics_by_extraction"]) == ["boxed", "flexible", "strict"]


def test_paper_studies_plan_their_grading_and_eval_prompt():
    """The plan's commands carry each study's extraction, equivalence and eval prompt (config.yaml)."""
    import subprocess

    from dryrun import REPO, SNAKEMAKE

    proc = subprocess.run(
        [SNAKEMAKE, "-n", "-p", "--profile", "profiles/slurm", "all"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "--benchmark math500 --seed 0 --processes 1 --extraction boxed --equivalence pwopsd" in out
    # one generation job per run: each (benchmark, seed) carries its sampling in --jobs-json
    assert '"top_p":0.95' in out and "--enable-thinking true" in out
    assert "put your final answer within \\\\boxed{}." in out  # the template as one-line JSON
    assert (
        "--benchmark gsm8k --seed 0 --processes 1 --extraction first_hash,strict,flexible --equivalence cis5300" in out
    )
    assert "--benchmark amc23 --seed 0 --processes 1 --extraction first_hash --equivalence cis5300" in out

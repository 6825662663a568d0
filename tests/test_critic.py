"""The optional critic score: parsing the judge's reply, and a real judge behind the embedded server."""

from __future__ import annotations

import json

import pytest

from motab.evaluation.critic import critic_messages, main, parse_score, summarize


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("4", 4.0),
        ("Score: 3.5/5", 3.5),
        ("I'd give it 7, no: 2", 2.0),
        ("0 then 5", 5.0),
        ("none", None),
        ("", None),
        (None, None),
        ("-1", None),
    ],
)
def test_parse_score_takes_the_first_number_within_the_scale(reply, expected):
    assert parse_score(reply, 1, 5) == expected


def test_summary_ignores_invalid_replies_and_reports_their_share():
    assert summarize([[4.0, None], [2.0, 3.0]]) == {"critic": 3.0, "critic_invalid": 0.25}
    assert summarize([[None]]) == {"critic": 0.0, "critic_invalid": 1.0}


def test_prompt_carries_rubric_scale_problem_and_response():
    system, user = critic_messages("Judge clarity.", 1, 10, "What is 2+2?", "It is 4.")
    assert system["content"].endswith("Judge clarity.") and "What is 2+2?" in user["content"]
    assert "It is 4." in user["content"] and "from 1 to 10" in user["content"]


def test_judge_behind_embedded_server_is_seeded_and_repeatable(tiny_model_dir, tmp_path):
    from motab.serving.launch import LOCAL_SERVER, serving

    evaluation = {
        "run": "r",
        "benchmark": "b",
        "seed": 0,
        "samples": [
            {"id": "p1", "responses": ["2+2 is 4, so \\boxed{4}.", "I think 5."]},
            {"id": "p2", "responses": ["x", "y"]},
        ],
    }
    (tmp_path / "eval.json").write_text(json.dumps(evaluation))
    (tmp_path / "problems.jsonl").write_text('{"id": "p1", "input": "What is 2+2?"}\n{"id": "p2", "input": "Say x."}\n')
    outputs = []
    with serving(LOCAL_SERVER, str(tiny_model_dir), tmp_path / "server.log") as url:
        for name in ("one", "two"):
            out = tmp_path / f"{name}.json"
            assert (
                main(
                    [
                        "--eval",
                        str(tmp_path / "eval.json"),
                        "--problems",
                        str(tmp_path / "problems.jsonl"),
                        "--model",
                        str(tiny_model_dir),
                        "--output",
                        str(out),
                        "--rubric",
                        "Judge correctness.",
                        "--scale-min",
                        "1",
                        "--scale-max",
                        "5",
                        "--max-tokens",
                        "6",
                        "--temperature",
                        "0.7",
                        "--server-url",
                        url,
                    ]
                )
                == 0
            )
            outputs.append(json.loads(out.read_text()))
    first, second = outputs
    assert [s["id"] for s in first["samples"]] == ["p1", "p2"]
    assert all(len(s["replies"]) == 2 and len(s["critic"]) == 2 for s in first["samples"])
    assert all(c is None or 1 <= c <= 5 for s in first["samples"] for c in s["critic"])
    assert set(first["metrics"]) == {"critic", "critic_invalid"} and first["scale"] == [1.0, 5.0]
    assert [s["replies"] for s in first["samples"]] == [s["replies"] for s in second["samples"]]  # seeded


def test_critic_table_plans_judge_runs_on_the_graded_evals(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    override = tmp_path / "critic.yaml"
    override.write_text(
        "studies:\n  toy:\n    eval:\n      critic: {model: toy-teacher, rubric: 'Judge each step.', "
        "scale: [1, 5]}\n    tables:\n      critic: {title: Critic, metric: critic, scale: 1, "
        "rows: [base_student, teacher]}\n"
    )
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("snakemake")), "-n", "-p", "--configfile", "config.yaml", str(override)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("rule eval_critic:") == 4  # 2 runs x 1 benchmark x 2 seeds
    assert "--eval results/toy/eval/teacher/toy_test/seed1.json" in out and "--scale-max 5" in out
    assert "results/toy/tables/critic.md" in out and "results/toy/report/critic.png" in out

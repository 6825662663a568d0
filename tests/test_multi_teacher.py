"""kd-train with several teachers (Tinker's multi-teacher on-policy distillation), on tiny Qwen3 models:
each teacher brings its own prompts and prompts per step, a step concatenates them, each rollout is
scored by its own teacher, and the loss is the one over the concatenated batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_onpolicy import read_csv, weights

from motab.jsonio import write_jsonl
from motab.toy.tasks import TaskSpec, generate_problems
from motab.training.kd import command as kd_command
from motab.training.kd import loop as kd_loop
from motab.training.kd import models as kd_models
from motab.training.kd import prompts as kd_prompts
from motab.training.kd import rollouts as kd_rollouts
from motab.training.kd import step as kd_step


@pytest.fixture(scope="module")
def second_prompts(kd_setup) -> Path:
    """A second prompt file: other problems (three operations), so each source is recognisable."""
    rows = generate_problems(TaskSpec(num_ops=3), n=12, seed=7)
    path = kd_setup["root"] / "second.jsonl"
    write_jsonl(
        path,
        [
            {
                "id": f"second-{r['id']}",
                "messages": [{"role": "user", "content": r["question"]}],
                "answer": r["answer"],
                "solution": r["solution"],
            }
            for r in rows
        ],
    )
    return path


def multi_argv(
    kd_setup,
    out: Path,
    sources: list[tuple[str, Path, int]],
    *extra: str,
    steps: int = 3,
    loss: str = "rkl_onpolicy",
) -> list[str]:
    triples = [
        part
        for teacher, prompts, k in sources
        for part in (
            "--teacher",
            str(kd_setup.get(teacher, teacher)),
            "--prompts",
            str(prompts),
            "--prompts-per-step",
            str(k),
        )
    ]
    return [
        *triples,
        "--student",
        str(kd_setup["student"]),
        "--output",
        str(out / "model"),
        "--log-csv",
        str(out / "log.csv"),
        "--loss",
        loss,
        "--steps",
        str(steps),
        "--samples-per-prompt",
        "2",
        "--max-new-tokens",
        "8",
        "--temperature",
        "1.0",
        "--lr",
        "1e-2",
        "--seed",
        "0",
        "--threads",
        "1",
        "--chunk-tokens",
        "5",
        *extra,
    ]


def test_a_step_concatenates_each_sources_prompts_in_order(
    kd_setup,
    second_prompts,
    tmp_path,
    monkeypatch,
):
    args = kd_command.parse_args(
        multi_argv(kd_setup, tmp_path, [("teacher", kd_setup["prompts"], 2), ("student", second_prompts, 3)])
    )
    sources = kd_prompts.prompt_sources(*args)
    assert [len(s.conversations) for s in sources] == [20, 12] and [s.per_step for s in sources] == [2, 3]
    # each source keeps its own order (its prompts shuffled by --seed) and cycles through it on its own
    assert kd_prompts.source_batches(sources, 1) == [sources[0].order[0:2], sources[1].order[0:3]]
    assert kd_prompts.source_batches(sources, 5) == [sources[0].order[8:10], sources[1].order[0:3]]

    seen = []  # the prompts the trainer really samples from, step by step
    real = kd_rollouts.sample_rollouts

    def recording(model, tokenizer, conversations, *rest, **options):
        seen.append([c[-1]["content"] for c in conversations])
        return real(model, tokenizer, conversations, *rest, **options)

    monkeypatch.setattr(kd_step, "sample_rollouts", recording)
    assert (
        kd_command.main(
            multi_argv(
                kd_setup, tmp_path, [("teacher", kd_setup["prompts"], 2), ("student", second_prompts, 3)], steps=2
            )
        )
        == 0
    )
    for step, questions in enumerate(seen, start=1):
        first, second = kd_prompts.source_batches(sources, step)
        assert questions == (
            [sources[0].conversations[i][-1]["content"] for i in first]
            + [sources[1].conversations[i][-1]["content"] for i in second]
        )
    assert len(seen) == 2


def test_each_rollout_is_scored_by_its_own_teacher(kd_setup, second_prompts, tmp_path):
    # teacher 2 IS the student (its checkpoint): at step 1 its rollouts have zero KL, teacher 1's do not
    assert (
        kd_command.main(
            multi_argv(
                kd_setup, tmp_path, [("teacher", kd_setup["prompts"], 2), ("student", second_prompts, 2)], steps=1
            )
        )
        == 0
    )
    row = read_csv(tmp_path / "log.csv")[0]
    kl_1, kl_2, kl = float(row["kl_to_teacher_1"]), float(row["kl_to_teacher_2"]), float(row["kl_to_teacher"])
    assert kl_1 > 0.1 and abs(kl_2) < 1e-5
    assert kl_2 < kl < kl_1  # the batch's KL: the token-weighted mean of both
    record = json.loads((tmp_path / "model" / "kd_run.json").read_text())
    assert record["args"]["teachers"] == [str(kd_setup["teacher"]), str(kd_setup["student"])]
    assert record["final"]["kl_to_teacher_by_teacher"] == [row["kl_to_teacher_1"], row["kl_to_teacher_2"]]
    # the checkpoint's training_log.csv keeps the report's columns
    assert (tmp_path / "model" / kd_loop.LOG_FILE).read_text().splitlines()[0] == ",".join(kd_loop.LOG_COLUMNS)


@pytest.mark.parametrize("loss", ["rkl_onpolicy", "rkl", "pwopsd"])
def test_split_batch_loss_equals_the_loss_over_the_concatenated_batch(kd_setup, loss):
    """Two sources with the same teacher: the weighted per-teacher losses are the one-teacher loss."""
    args = kd_command.parse_args(
        [
            "--student",
            str(kd_setup["student"]),
            "--teacher",
            str(kd_setup["teacher"]),
            "--prompts",
            str(kd_setup["prompts"]),
            "--output",
            "unused",
            "--loss",
            loss,
            "--steps",
            "1",
            "--prompts-per-step",
            "3",
            "--samples-per-prompt",
            "2",
            "--max-new-tokens",
            "8",
            "--temperature",
            "1.0",
            "--lr",
            "1e-2",
            "--seed",
            "0",
            "--chunk-tokens",
            "5",
        ]
    )
    torch.manual_seed(0)
    student, (teacher,), tokenizer = kd_models.load_models(*args)
    conversations = kd_prompts.read_prompts(kd_setup["prompts"])[:3]
    rollouts = kd_rollouts.sample_rollouts(student, tokenizer, conversations, 2, 8, 1.0)
    whole, kl_whole = kd_step.distillation_loss(student, teacher, rollouts, args[0])
    split, kl_split, kls = kd_step.multi_teacher_loss(
        student, [teacher, teacher], rollouts, args[0], [(slice(0, 2), None), (slice(2, 6), None)]
    )
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)
    assert kl_split == pytest.approx(kl_whole, rel=1e-5) and len(kls) == 2


def test_resume_with_two_teachers_matches_an_uninterrupted_run(
    kd_setup,
    second_prompts,
    tmp_path,
    monkeypatch,
):
    sources = [("teacher", kd_setup["prompts"], 2), ("self", second_prompts, 1)]  # self: privileged prompts
    assert kd_command.main(multi_argv(kd_setup, tmp_path / "full", sources, steps=4)) == 0

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash before the final save")

    monkeypatch.setattr(kd_loop, "atomic_save", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        kd_command.main(multi_argv(kd_setup, tmp_path / "resumed", sources, "--save-steps", "3", steps=4))
    monkeypatch.undo()
    assert kd_command.main(multi_argv(kd_setup, tmp_path / "resumed", sources, "--save-steps", "3", steps=4)) == 0
    full = read_csv(tmp_path / "full" / "log.csv")
    assert read_csv(tmp_path / "resumed" / "log.csv") == full
    assert all(float(r["kl_to_teacher_1"]) > 0.1 for r in full)
    wa, wb = weights(tmp_path / "full" / "model"), weights(tmp_path / "resumed" / "model")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_flags_must_come_once_per_teacher(kd_setup, second_prompts, tmp_path, capsys):
    argv = multi_argv(kd_setup, tmp_path, [("teacher", kd_setup["prompts"], 2), ("student", second_prompts, 2)])
    argv.remove("--prompts-per-step")
    argv.remove("2")
    with pytest.raises(SystemExit):
        kd_command.parse_args(argv)
    assert "found 2 --teacher, 2 --prompts, 1 --prompts-per-step" in capsys.readouterr().err


def test_each_distinct_teacher_is_loaded_once(kd_setup, second_prompts, tmp_path):
    sources = [
        ("teacher", kd_setup["prompts"], 1),
        ("self", second_prompts, 1),
        ("teacher", second_prompts, 1),
        ("self", kd_setup["prompts"], 1),
    ]
    args = kd_command.parse_args(multi_argv(kd_setup, tmp_path, sources))
    student, teachers, _ = kd_models.load_models(*args)
    assert teachers[0] is teachers[2] and teachers[1] is teachers[3] and teachers[0] is not teachers[1]
    assert teachers[1] is not student and not any(p.requires_grad for t in teachers for p in t.parameters())

"""The built-in on-policy distillation trainer, end to end on tiny random Qwen3 models."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch

from motab.jsonio import write_jsonl
from motab.losses.divergences import chunked_token_logprobs
from motab.plan import workflow_config
from motab.training.checkpoint import atomic_save
from motab.training.kd import command as kd_command
from motab.training.kd import loop as kd_loop
from motab.training.kd import models as kd_models
from motab.training.kd import prompts as kd_prompts
from motab.training.kd import rollouts as kd_rollouts
from motab.training.kd import step as kd_step


def kd_argv(
    kd_setup,
    out: Path,
    *extra: str,
    teacher: str = "teacher",
    loss: str = "rkl_onpolicy",
    steps: int = 3,
    lr: float = 1e-2,
    seed: int = 0,
    new_tokens: int = 8,
) -> list[str]:
    return [
        "--student",
        str(kd_setup["student"]),
        "--teacher",
        str(kd_setup.get(teacher, teacher)),
        "--prompts",
        str(kd_setup["prompts"]),
        "--output",
        str(out / "model"),
        "--log-csv",
        str(out / "log.csv"),
        "--loss",
        loss,
        "--steps",
        str(steps),
        "--prompts-per-step",
        "2",
        "--samples-per-prompt",
        "2",
        "--max-new-tokens",
        str(new_tokens),
        "--temperature",
        "1.0",
        "--lr",
        str(lr),
        "--seed",
        str(seed),
        "--threads",
        "1",
        "--chunk-tokens",
        "5",
        *extra,
    ]


def run(kd_setup, out: Path, *extra: str, **options) -> tuple[Path, Path]:
    assert kd_command.main(kd_argv(kd_setup, out, *extra, **options)) == 0
    return out / "model", out / "log.csv"


def read_csv(path: Path, drop_seconds: bool = True) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: v for k, v in r.items() if not (drop_seconds and k == "seconds")} for r in rows]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_prompt_batches_cycle_through_the_shuffled_order():
    order = [3, 0, 2, 1]
    assert kd_prompts.prompt_batch(order, 1, 3) == [3, 0, 2]
    assert kd_prompts.prompt_batch(order, 2, 3) == [1, 3, 0]


@pytest.mark.parametrize("loss", ["rkl_onpolicy", "jsd"])
def test_smoke_run_writes_log_and_a_changed_checkpoint(kd_setup, tmp_path, loss):
    from transformers import AutoModelForCausalLM

    own = ["--kl-discount", "0.5"] if loss == "rkl_onpolicy" else ["--jsd-beta", "0.3"]  # each loss's own setting
    output, log = run(kd_setup, tmp_path, *own, "--params-json", '{"study": "toy"}', loss=loss)
    with open(log, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == kd_loop.CSV_COLUMNS
        rows = list(reader)
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    for r in rows:
        assert 0 < float(r["rollout_tokens"]) <= 8 and float(r["seconds"]) >= 0
        assert float(r["kl_to_teacher"]) > 0.1
    model = AutoModelForCausalLM.from_pretrained(output)
    assert model.config.model_type == "qwen3"
    before, after = weights(kd_setup["student"]), weights(output)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    record = json.loads((output / "kd_run.json").read_text())
    assert record["args"]["loss"] == loss and record["params"] == {"study": "toy"}
    assert set(record["provenance"]) >= {"config_hash", "code_version"}
    assert not (tmp_path / ".model.tmp").exists() and not (tmp_path / "model.partial").exists()
    # the checkpoint's training_log.csv: the progress rows without seconds, exactly these columns
    lines = (output / kd_loop.LOG_FILE).read_text().splitlines()
    assert lines[0] == "step,loss,kl_to_teacher,rollout_tokens"
    assert lines[1:] == [",".join(r[c] for c in kd_loop.LOG_COLUMNS) for r in rows]


def test_student_as_its_own_teacher_has_zero_kl(kd_setup, tmp_path):
    _, log = run(kd_setup, tmp_path, teacher="student", loss="rkl", steps=1)
    row = read_csv(log)[0]
    assert abs(float(row["kl_to_teacher"])) < 1e-5 and abs(float(row["loss"])) < 1e-5


def test_rerun_with_same_seed_is_identical(kd_setup, tmp_path):
    out_a, log_a = run(kd_setup, tmp_path / "a", loss="fkl")
    out_b, log_b = run(kd_setup, tmp_path / "b", loss="fkl")
    _, log_c = run(kd_setup, tmp_path / "c", loss="fkl", seed=1)
    assert read_csv(log_a) == read_csv(log_b) != read_csv(log_c)
    assert (out_a / kd_loop.LOG_FILE).read_bytes() == (out_b / kd_loop.LOG_FILE).read_bytes()
    wa, wb = weights(out_a), weights(out_b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_after_a_crash_matches_an_uninterrupted_run(kd_setup, tmp_path, monkeypatch):
    full_out, full_log = run(kd_setup, tmp_path / "full", steps=4)

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash before the final save")

    monkeypatch.setattr(kd_loop, "atomic_save", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(kd_setup, tmp_path / "resumed", "--save-steps", "3", steps=4)
    assert (tmp_path / "resumed" / "model.partial" / "step-3").is_dir()
    assert not (tmp_path / "resumed" / "model").exists()
    monkeypatch.undo()

    out, log = run(kd_setup, tmp_path / "resumed", "--save-steps", "3", steps=4)
    assert read_csv(log) == read_csv(full_log)
    wa, wb = weights(full_out), weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not (tmp_path / "resumed" / "model.partial").exists()


def test_eval_step_checkpoint_holds_that_steps_weights_and_survives_a_resume(kd_setup, tmp_path, monkeypatch):
    """PW-OPSD's protocol: train 4 steps, evaluate step 2. The output is the 2-step weights, the log has 4 rows."""
    two_out, two_log = run(kd_setup, tmp_path / "two", steps=2)
    out, log = run(kd_setup, tmp_path / "four", "--eval-step", "2", steps=4)
    assert read_csv(log)[:2] == read_csv(two_log) and len(read_csv(log)) == 4
    assert len((out / kd_loop.LOG_FILE).read_text().splitlines()) == 1 + 4
    w2, w4 = weights(two_out), weights(out)
    assert all(torch.equal(w2[k], w4[k]) for k in w2)
    assert json.loads((out / "kd_run.json").read_text())["final"]["checkpoint_step"] == 2

    # killed after step 3 (state saved at 3, step 2's weights kept aside): the rerun still exports step 2
    monkeypatch.setattr(kd_loop, "atomic_save", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError, match="crash"):
        run(kd_setup, tmp_path / "resumed", "--eval-step", "2", "--save-steps", "3", steps=4)
    monkeypatch.undo()
    out, _ = run(kd_setup, tmp_path / "resumed", "--eval-step", "2", "--save-steps", "3", steps=4)
    w = weights(out)
    assert all(torch.equal(w2[k], w[k]) for k in w2)
    assert not (tmp_path / "resumed" / "model.partial").exists()
    with pytest.raises(SystemExit):
        kd_command.parse_args(kd_argv(kd_setup, tmp_path / "bad", "--eval-step", "5", steps=4))


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_uninterrupted_weights(kd_setup, tmp_path):
    """SIGKILL a real `motab kd-train` process after its first saved state; the rerun resumes from it.

    Saved: weights, AdamW state, the torch RNG and the logged rows, so steps after the resume draw the
    same rollouts and the result equals an uninterrupted run's bit for bit (CPU, one thread).
    """
    import os
    import signal
    import subprocess
    import sys
    import time

    options = {"loss": "fkl", "steps": 20, "lr": 3e-3}
    full_out, _ = run(kd_setup, tmp_path / "full", **options)
    argv = kd_argv(kd_setup, tmp_path / "killed", "--save-steps", "4", **options)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "motab", "kd-train", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    partial, deadline = tmp_path / "killed" / "model.partial", time.time() + 120
    while kd_loop.latest_training_state(partial) is None:
        assert proc.poll() is None and time.time() < deadline, "kd-train ended or stalled before its first save"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = kd_loop.latest_training_state(partial)
    assert not (tmp_path / "killed" / "model").exists() and saved.name != "step-20"

    out, _ = run(kd_setup, tmp_path / "killed", "--save-steps", "4", **options)
    assert (out / kd_loop.LOG_FILE).read_bytes() == (full_out / kd_loop.LOG_FILE).read_bytes()
    wa, wb = weights(full_out), weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not partial.exists()


def test_atomic_save_replaces_a_finished_folder_and_leaves_no_temporary(kd_setup, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(kd_setup["student"])
    tok = AutoTokenizer.from_pretrained(kd_setup["student"])
    out = tmp_path / "ckpt"
    atomic_save(model, tok, out, extra_json={"a.json": {"x": 1}})
    atomic_save(model, tok, out, extra_json={"b.json": {"x": 2}})
    assert (out / "b.json").exists() and not (out / "a.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


TOY_KD = workflow_config(Path(__file__).resolve().parents[1])["studies"]["toy"]["kd"]
BUDGET = (
    "engine",
    "loss",
    "steps",
    "prompts_per_step",
    "samples_per_prompt",
    "max_new_tokens",
    "temperature",
    "lr",
    "seed",
)


@pytest.mark.parametrize("name", sorted(TOY_KD))
def test_toy_kd_losses_bring_the_student_towards_the_teacher(kd_setup, tmp_path, name):
    """Each KD recipe of the toy study (its loss and loss options from config.yaml; this test's own small
    budget) lowers the KL to a different teacher in the checkpoint's training_log.csv."""
    # rkl_onpolicy is not checked here: its sampled one-token estimate is unbiased (see test_losses) but far
    # too noisy to move a near-uniform random student over a 300-token vocabulary in 20 tiny steps
    cfg = TOY_KD[name]
    options = ["--config-json", json.dumps({k: v for k, v in cfg.items() if k not in BUDGET} | {"loss": cfg["loss"]})]
    output, _ = run(kd_setup, tmp_path, *options, loss=cfg["loss"], steps=20, lr=3e-2, new_tokens=12)
    lines = (output / kd_loop.LOG_FILE).read_text().splitlines()
    kl = [float(line.split(",")[2]) for line in lines[1:]]
    start, end = sum(kl[:3]) / 3, sum(kl[-4:]) / 4
    assert len(kl) == 20 and end < 0.5 * start, kl


# ----------------------------------------------------------------------------- new losses and self-distillation

NEW_LOSSES = [
    ("akl", "--akl-mu", "0.6"),
    ("skl", "--skew-lambda", "0.2"),
    ("srkl", "--skew-lambda", "0.2"),
    ("opsd", "--clip", "50"),
    ("eopd", "--distill-temperature", "1.1"),
    ("pwopsd", "--clip", "40"),
    ("reopold", "--reopold-t-switch", "0"),
]


@pytest.mark.parametrize("loss,flag,value", NEW_LOSSES)
def test_new_losses_train_against_a_teacher_checkpoint(kd_setup, tmp_path, loss, flag, value):
    # opsd/pwopsd get a large clip here: this far random teacher puts most vocabulary entries above 0.05,
    # and an entry clamped at the clip has no gradient
    output, log = run(kd_setup, tmp_path, flag, value, loss=loss, steps=2)
    rows = read_csv(log)
    assert len(rows) == 2 and all(float(r["kl_to_teacher"]) > 0.1 for r in rows)
    before, after = weights(kd_setup["student"]), weights(output)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert json.loads((output / "kd_run.json").read_text())["args"][flag[2:].replace("-", "_")] == float(value)


def test_reopold_phase_one_drops_tokens_below_the_reward_floor(kd_setup, tmp_path):
    """This far random teacher gives every token a reward below REOPOLD's floor: in phase I (the first
    --reopold-t-switch steps) they are all dropped, so nothing trains (the release's mask)."""
    output, log = run(kd_setup, tmp_path, "--reopold-t-switch", "5", loss="reopold", steps=2)
    assert all(float(r["loss"]) == 0.0 for r in read_csv(log))
    before, after = weights(kd_setup["student"]), weights(output)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_teacher_prompt_follows_opsd_wording():
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "What is 2+3?"}]
    got = kd_prompts.teacher_messages(messages, "2+3 = 5. \\boxed{5}")
    assert got[0] == messages[0] and len(got) == 2
    assert got[1]["content"] == (
        "What is 2+3?\n\nHere is a reference solution to this problem:\n2+3 = 5. \\boxed{5}\n\n\n"
        "After understanding the reference solution and the rationale behind each step, now articulate your own "
        "step-by-step reasoning that derives the same final answer to the problem below:\n\n"
        "Please reason step by step, and put your final answer within \\boxed{}."
    )


def test_self_teacher_scores_the_same_response_after_the_privileged_prompt(kd_setup):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(kd_setup["student"])
    tok.padding_side = "left"
    conversations, privileged = kd_prompts.read_prompts(kd_setup["prompts"], need_solution=True)
    response = torch.tensor([[5, 6, tok.eos_token_id, tok.pad_token_id]] * 4)
    mask = torch.tensor([[True, True, True, False]] * 4)
    rollouts = kd_rollouts.Rollouts(
        input_ids=response, attention_mask=mask.long(), prompt_len=0, response=response, response_mask=mask
    )
    teacher = kd_rollouts.with_prompts(rollouts, tok, privileged[:2], n=2)
    assert torch.equal(teacher.input_ids[:, teacher.prompt_len :], response)
    prompt = tok.decode(teacher.input_ids[0, : teacher.prompt_len], skip_special_tokens=True)
    solution = json.loads(kd_setup["prompts"].read_text().splitlines()[0])["solution"]
    assert "reference solution" in prompt and solution.split()[0] in prompt
    assert conversations[0][0]["content"] in prompt


def test_prompts_without_solution_are_refused_for_self_distillation(tmp_path):
    from motab.jsonio import DataError

    write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "messages": [{"role": "user", "content": "q"}], "solution": None}])
    with pytest.raises(DataError, match="solution"):
        kd_prompts.read_prompts(tmp_path / "p.jsonl", need_solution=True)


def test_lora_teacher_is_the_student_with_adapters_disabled(kd_setup):
    from transformers import AutoModelForCausalLM

    args = kd_command.parse_args(
        [
            "--student",
            str(kd_setup["student"]),
            "--teacher",
            "self",
            "--prompts",
            "x",
            "--output",
            "o",
            "--log-csv",
            "l",
            "--loss",
            "opsd",
            "--steps",
            "1",
            "--prompts-per-step",
            "1",
            "--samples-per-prompt",
            "1",
            "--max-new-tokens",
            "1",
            "--temperature",
            "1",
            "--lr",
            "1",
            "--seed",
            "0",
            "--lora-rank",
            "4",
        ]
    )
    student, (teacher,), _ = kd_models.load_models(*args)
    assert teacher is student
    with torch.no_grad():
        for name, param in student.named_parameters():
            if "lora_B" in name:
                param.normal_()  # adapters that change the output
    base = AutoModelForCausalLM.from_pretrained(kd_setup["student"])
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        adapted = student(input_ids=ids).logits
        with kd_step.teacher_scoring(student, teacher):
            frozen = teacher(input_ids=ids).logits
        reference = base(input_ids=ids).logits
    torch.testing.assert_close(frozen, reference)
    assert not torch.allclose(adapted, reference)
    assert all(("lora_" in n) == p.requires_grad for n, p in student.named_parameters())


@pytest.mark.parametrize("lora", [False, True])
def test_self_distillation_runs_and_saves_a_plain_checkpoint(kd_setup, tmp_path, lora):
    from transformers import AutoModelForCausalLM

    extra = ["--lora-rank", "4", "--lora-alpha", "8"] if lora else []
    output, log = run(
        kd_setup, tmp_path, "--distill-temperature", "1.1", *extra, teacher="self", loss="pwopsd", steps=2, lr=3e-2
    )
    rows = read_csv(log)
    # step 1: student == teacher weights, only the prompts differ, so the KL is small but not zero
    assert abs(float(rows[0]["kl_to_teacher"])) > 0 and float(rows[0]["loss"]) > 0
    model = AutoModelForCausalLM.from_pretrained(output)
    assert model.config.model_type == "qwen3"
    before, after = weights(kd_setup["student"]), weights(output)
    assert set(before) == set(after)  # LoRA merged away: the same tensors as a full checkpoint
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("loss", ["eopd", "reopold"])
def test_self_distillation_with_the_pwopsd_studys_flags(kd_setup, tmp_path, loss):
    """The release's settings together (prompts, thinking, top-p/top-k, linear LR, micro-batch mean,
    REOPOLD's phase II from step 2) train and log each step; the linear schedule reaches step 2."""
    flags = [
        "--prompt-style",
        "pwopsd",
        "--student-thinking",
        "false",
        "--teacher-thinking",
        "true",
        "--top-p",
        "0.95",
        "--top-k",
        "20",
        "--lr-schedule",
        "linear",
        "--loss-average",
        "micro_batch",
        "--micro-batch-prompts",
        "1",
        "--distill-temperature",
        "1.1",
        "--grad-clip",
        "0.1",
        "--reopold-t-switch",
        "1",
        "--mask-pad-tokens",
        "true",
    ]
    output, log = run(kd_setup, tmp_path, *flags, teacher="self", loss=loss, steps=2, lr=3e-2)
    assert len(read_csv(log)) == 2
    before, after = weights(kd_setup["student"]), weights(output)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_token_clip_stops_gradients_of_far_tokens(kd_setup, tmp_path):
    """compat paper clamps each token's whole KL: a far teacher leaves no gradient at all. The release
    (compat released) clamps each vocabulary entry, so the entries below the clip still train."""
    output, log = run(kd_setup, tmp_path, "--clip", "0.05", "--compat", "paper", loss="opsd", steps=1)
    assert float(read_csv(log)[0]["loss"]) == pytest.approx(0.05)
    before, after = weights(kd_setup["student"]), weights(output)
    assert all(torch.equal(before[k], after[k]) for k in before)
    released, log = run(kd_setup, tmp_path / "released", "--clip", "0.05", loss="opsd", steps=1)
    assert float(read_csv(log)[0]["loss"]) > 0.05
    assert any(not torch.equal(before[k], v) for k, v in weights(released).items())


def test_a_checkpoints_kd_config_reruns_its_training_by_hand(kd_setup, tmp_path):
    """kd_config.json in the checkpoint + the runtime flags (where, not how) = the same run, byte for byte."""
    output, _ = run(kd_setup, tmp_path / "first", "--distill-temperature", "1.1", loss="fkl", steps=2)
    settings = json.loads((output / "kd_config.json").read_text())
    assert (settings["loss"], settings["distill_temperature"], settings["steps"]) == ("fkl", 1.1, 2)
    again = tmp_path / "again"
    assert (
        kd_command.main(
            [
                "--config",
                str(output / "kd_config.json"),
                "--student",
                str(kd_setup["student"]),
                "--teacher",
                str(kd_setup["teacher"]),
                "--prompts",
                str(kd_setup["prompts"]),
                "--output",
                str(again),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    for name in ("model.safetensors", kd_loop.LOG_FILE, "kd_config.json"):
        assert (again / name).read_bytes() == (output / name).read_bytes(), name


def test_every_config_key_is_read_from_the_kd_block_and_from_its_flag(tmp_path):
    """The rule hands kd-train the kd block as JSON (--config-json); the checkpoint's kd_config.json
    holds the same settings, --config reads it back, and every setting also has its own flag."""
    from motab.training.kd.command import setting_fields

    values = {
        "loss": "pwopsd",
        "compat": "paper",
        "dtype": "bfloat16",
        "lr": 0.001,
        "temperature": 0.6,
        "distill_temperature": 1.1,
        "clip": 1.0,
        "w_min": 0.25,
        "pw_tau": 0.3,
        "pw_s": 0.1,
        "reopold_lambda": 0.2,
        "reopold_beta": 0.5,
        "top_p": 0.95,
        "top_k": 20,
        "student_thinking": False,
        "teacher_thinking": True,
        "prompt_style": "pwopsd",
        "lr_schedule": "linear",
        "loss_average": "micro_batch",
        "mask_pad_tokens": True,
        "grad_clip": 1.0,
        "lora_alpha": 8.0,
        "gradient_checkpointing": True,
        "lora_unembed": True,
        "lora_init": "sft_adapter",
        "adam_beta2": 0.95,
        "prompt_order": "file",
        "max_prompt_tokens": 1024,
        "teacher_server": False,  # true needs a loss that reads only the sampled tokens (test_kd_teacher_server)
    }
    own = {"kl_discount", "jsd_beta", "skew_lambda", "akl_mu"}  # other losses' settings
    block = {key: values.get(key, 3) for key in setting_fields() if key not in own} | {"prompts_per_step": 3}
    runtime = ["--student", "s", "--teacher", "t", "--prompts", "p", "--output", "o"]
    config, options = kd_command.parse_args([*runtime, "--config-json", json.dumps({"engine": "builtin", **block})])
    assert options.prompts_per_step == (3,) and options.params == {"engine": "builtin", **block}
    assert config.as_dict() == block
    (tmp_path / "kd_config.json").write_text(json.dumps(config.as_dict()))
    assert kd_command.parse_args([*runtime, "--config", str(tmp_path / "kd_config.json")])[0] == config
    flags = [part for key, value in block.items() for part in (f"--{key.replace('_', '-')}", str(value))]
    assert kd_command.parse_args([*runtime, *flags])[0] == config
    # a flag overrides the config; a key of no loss, or of another loss, is an error naming it
    assert kd_command.parse_args([*runtime, "--config-json", json.dumps(block), "--clip", "2"])[0].loss_params.clip == 2
    for bad, field in (
        ({**block, "num_epochs": 2}, "num_epochs"),
        ({**block, "jsd_beta": 0.5}, "jsd_beta"),
        ({**block, "steps": "3"}, "steps"),
        ({**block, "loss": "nope"}, "loss"),
    ):
        args = vars(kd_command.parser().parse_args([*runtime, "--config-json", json.dumps(bad)]))
        with pytest.raises(ValueError, match=re.escape(f"--config-json + flags: {field}: ")):
            kd_command.read_run(args)


def test_student_logprobs_at_the_sampling_temperature_equal_generates_scores(kd_setup):
    """rkl_onpolicy takes log p_sampler(y_t) from the student's training forward pass at the sampling
    temperature (importance ratio 1): those values equal what generate's per-step scores give (which
    sample_rollouts does not keep: R * M * |V| floats), early eos and full-length rollouts alike."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(kd_setup["student"])
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(kd_setup["student"])
    conversations = kd_prompts.read_prompts(kd_setup["prompts"])[:2]
    prompt = tok(
        tok.apply_chat_template(conversations[0], add_generation_prompt=True, tokenize=False),
        return_tensors="pt",
        add_special_tokens=False,
    )
    with torch.no_grad():  # make eos likely at the first response token, so some rollouts stop early
        h = model.model(**prompt).last_hidden_state[0, -1]
        model.lm_head.weight[tok.eos_token_id] = 3.0 * h / h.dot(h)
    n, new_tokens, temperature = 3, 12, 0.7
    model.train()
    torch.manual_seed(2)
    got = kd_rollouts.sample_rollouts(model, tok, conversations, n, new_tokens, temperature)
    assert model.training  # sample_rollouts puts the mode back
    with torch.no_grad():
        mask = got.response_mask
        student = torch.zeros(mask.shape).masked_scatter(
            mask,
            chunked_token_logprobs(
                kd_rollouts.response_hidden(model, got)[mask],
                model.lm_head,
                got.response[mask],
                tau=temperature,
                chunk_tokens=5,
            ),
        )

    texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(2)
    model.eval()
    with torch.no_grad():
        out = model.generate(
            input_ids=enc.input_ids.repeat_interleave(n, 0),
            attention_mask=enc.attention_mask.repeat_interleave(n, 0),
            do_sample=True,
            temperature=temperature,
            top_k=None,
            top_p=None,
            max_new_tokens=new_tokens,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            return_dict_in_generate=True,
            output_scores=True,
        )
    assert torch.equal(out.sequences, got.input_ids)
    reference = (
        torch.stack(
            [
                torch.log_softmax(s.float(), -1).gather(-1, got.response[:, t : t + 1]).squeeze(-1)
                for t, s in enumerate(out.scores)
            ],
            dim=1,
        )
        * got.response_mask
    )
    lengths = got.response_mask.sum(-1)
    assert (lengths == 1).any() and (lengths == new_tokens).any()  # early eos and full-length rollouts
    torch.testing.assert_close(student, reference, rtol=0, atol=1e-5)


def test_progress_has_a_header_and_a_step_of_total_line_per_step_and_the_csv_stays(kd_setup, tmp_path, capsys):
    """The console shows what each number is, where the run is and when it ends; the machine-readable
    log keeps its columns (the report's curves read the checkpoint's training_log.csv)."""
    _, log = run(kd_setup, tmp_path, steps=3)
    out = capsys.readouterr().out.splitlines()
    assert f"GPUs used: {torch.cuda.device_count()}" in out  # what `motab cost` reads from the job's log
    header = next(i for i, line in enumerate(out) if line.startswith("KD: 3 steps of 4 rollouts, loss rkl_onpolicy"))
    assert out[header + 1].split() == ["step", "loss", "KL(student||teacher)", "tokens/s", "ETA"]
    steps = [line.split() for line in out[header + 2 :] if re.match(r"\s+\d+/3\s", line)]
    assert [s[0] for s in steps] == ["1/3", "2/3", "3/3"]
    rows = read_csv(log, drop_seconds=False)
    for shown, row in zip(steps, rows):
        assert float(shown[1]) == pytest.approx(float(row["loss"]), abs=1e-4)
        assert float(shown[2]) == pytest.approx(float(row["kl_to_teacher"]), abs=1e-4)
        assert float(shown[3]) > 0 and re.fullmatch(r"\d+:\d\d", shown[4])
    assert steps[-1][4] == "0:00"  # nothing left after the last step
    assert list(rows[0]) == list(kd_loop.CSV_COLUMNS)

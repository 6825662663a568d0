"""teacher_server: the built-in trainer's teacher behind its inference server (the embedded server,
which speaks SGLang's /generate protocol) gives what the in-process teacher gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from motab.losses.divergences import chunked_token_logprobs
from motab.serving.launch import LOCAL_SERVER, serving
from motab.training.kd import command as kd_command
from motab.training.kd import prompts as kd_prompts
from motab.training.kd import rollouts as kd_rollouts
from motab.training.kd.config import ConfigError, KDConfig
from motab.training.kd.teacher_server import ServerTeacher, teacher_token_logprobs
from tests.test_onpolicy import kd_argv, read_csv

REPO = Path(__file__).resolve().parents[1]
BLOCK = {"loss": "rkl_onpolicy", "steps": 1, "samples_per_prompt": 1, "max_new_tokens": 4}
BLOCK |= {"temperature": 1.0, "lr": 1e-3, "seed": 0, "prompts_per_step": 1}


@pytest.fixture(scope="module")
def teacher_url(kd_setup, tmp_path_factory):
    log = tmp_path_factory.mktemp("teacher_server") / "server.log"
    with serving(LOCAL_SERVER + " --threads 1", str(kd_setup["teacher"]), log, startup_timeout_s=120) as url:
        yield url


def test_served_teacher_logprobs_equal_the_in_process_teachers(kd_setup, teacher_url):
    """log p_T of every sampled token, rows of several lengths (early eos, left-padded prompts)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(kd_setup["student"])
    tok.padding_side = "left"
    student = AutoModelForCausalLM.from_pretrained(kd_setup["student"])
    teacher = AutoModelForCausalLM.from_pretrained(kd_setup["teacher"]).eval()
    conversations = kd_prompts.read_prompts(kd_setup["prompts"])[:3]
    longer = conversations[0][-1]["content"] * 2  # a longer prompt: the others are left-padded
    conversations.append([*conversations[0][:-1], {"role": "user", "content": longer}])
    torch.manual_seed(0)
    sampled = kd_rollouts.sample_rollouts(student, tok, conversations, 3, 12, 1.0)
    lengths = torch.arange(sampled.response.shape[0]) % 12 + 1  # rows of every length, as with early eos
    mask = torch.arange(12)[None, :] < lengths[:, None]
    prompt_mask = sampled.attention_mask[:, : sampled.prompt_len]
    attention = torch.cat([prompt_mask, mask.long()], 1)
    rollouts = dataclasses.replace(sampled, response_mask=mask, attention_mask=attention)
    assert len(set(mask.sum(-1).tolist())) > 1 and len(set(rollouts.attention_mask[:, 0].tolist())) > 1
    with torch.no_grad():
        hidden = kd_rollouts.response_hidden(teacher, rollouts)[mask]
        in_process = chunked_token_logprobs(hidden, teacher.lm_head, rollouts.response[mask], chunk_tokens=5)
    served = teacher_token_logprobs(ServerTeacher(teacher_url, str(kd_setup["teacher"])), rollouts)
    assert served.shape == in_process.shape == (int(mask.sum()),)
    torch.testing.assert_close(served, in_process, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_twenty_steps_with_the_served_teacher_log_what_the_in_process_teacher_logs(kd_setup, tmp_path):
    """The job starts the teacher's server itself (the embedded server, as a CPU job) and trains
    against it: its 20-step training log equals the in-process teacher's within float tolerance."""
    assert kd_command.main(kd_argv(kd_setup, tmp_path / "local", steps=20, lr=1e-2)) == 0
    served = kd_argv(kd_setup, tmp_path / "served", "--teacher-server", "true", steps=20, lr=1e-2)
    assert kd_command.main(served) == 0
    local, remote = read_csv(tmp_path / "local" / "log.csv"), read_csv(tmp_path / "served" / "log.csv")
    assert len(local) == len(remote) == 20
    for a, b in zip(local, remote):
        assert a["step"] == b["step"] and a["rollout_tokens"] == b["rollout_tokens"]
        for column in ("loss", "kl_to_teacher"):
            assert float(b[column]) == pytest.approx(float(a[column]), rel=1e-3, abs=1e-4), (a, b)
    assert (tmp_path / "served" / "model.teacher.log").is_file()  # the started server's log


@pytest.mark.parametrize("loss", ["rkl", "fkl", "opsd", "pwopsd"])
def test_losses_reading_the_full_teacher_distribution_refuse_a_teacher_server(loss):
    with pytest.raises(ConfigError) as error:
        KDConfig.from_dict(BLOCK | {"loss": loss, "teacher_server": True}, "studies.s.kd.k")
    message = str(error.value)
    assert "\n" not in message and message.startswith("studies.s.kd.k: teacher_server:") and f"loss {loss}" in message


def test_self_teacher_refuses_a_teacher_server(kd_setup, tmp_path):
    argv = kd_argv(kd_setup, tmp_path, "--teacher-server", "true", teacher="self")
    with pytest.raises(SystemExit):
        kd_command.parse_args(argv)


def test_the_plan_refuses_a_server_for_a_full_distribution_loss_and_for_a_self_teacher():
    from motab.plan import compose, kd_config_errors, workflow_config

    config = workflow_config(REPO)
    config.update(compose(config))
    config["studies"]["motab"]["kd"]["rkl"]["loss"] = "rkl"
    config["studies"]["pwopsd"]["kd"]["opsd"] |= {"loss": "rkl_onpolicy", "teacher_server": True}
    for key in ("clip", "compat", "distill_temperature", "w_min", "pw_tau", "pw_s"):
        config["studies"]["pwopsd"]["kd"]["opsd"].pop(key, None)
    errors = kd_config_errors(config)
    assert any(e.startswith("studies.motab.kd.rkl: teacher_server: loss rkl reads the teacher's full") for e in errors)
    assert any(e.startswith("studies.pwopsd.kd.opsd.teacher_server: run ") and "self" in e for e in errors)


def test_the_rules_kd_train_flags_start_the_teacher_on_its_gpus_and_parse(kd_setup):
    """The motab study's kd job: kd-train's own parser reads the flags the plan writes."""
    import shlex

    from motab.plan import Study, compose, kd_teacher_server_args, workflow_config
    from motab.serving.placement import from_json

    config = workflow_config(REPO)
    config.update(compose(config))
    flags = kd_teacher_server_args(Study.of(config, "motab"), "sft_teacher_only_kd_rkl", "Qwen3-32B", "t.log")
    argv = [*kd_argv(kd_setup, Path("out"), "--teacher-server", "true"), *shlex.split(flags)]
    args = kd_command.parser().parse_args(argv)
    assert args.teacher_server_command.startswith("python -m sglang.launch_server --model-path {model}")
    placement = from_json(args.placement)
    assert placement["teacher"].gpus == (0, 1, 2, 3) and placement["trainer"].gpus == (4, 5, 6, 7)


def test_an_answer_that_does_not_end_with_the_response_tokens_is_refused():
    from motab.training.kd.teacher_server import response_logprobs

    answer = {"meta_info": {"input_token_logprobs": [[None, 5, None], [-0.5, 7, None], [-1.5, 8, None]]}}
    assert response_logprobs(answer, [7, 8], "t") == [-0.5, -1.5]
    for response in ([8, 7], [5, 7, 8], [9, 7, 8, 1]):
        with pytest.raises(ValueError, match="do not cover"):
            response_logprobs(answer, response, "t")

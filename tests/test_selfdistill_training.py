"""kd-train's settings for the PW-OPSD family: the study's launcher values, prompts, LR schedule,
micro-batch averaging, and rkl_onpolicy's temperature handling."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from motab.plan import workflow_config
from motab.training.kd import command as kd_command
from motab.training.kd import loop as kd_loop
from motab.training.kd import prompts as kd_prompts
from motab.training.kd import rollouts as kd_rollouts
from motab.training.kd import step as kd_step
from motab.training.kd.config import KDConfig
from motab.training.kd.prompts import PWOPSD_TRANSITION, render

ROOT = Path(__file__).resolve().parents[1]
BASE = ["--student", "s", "--teacher", "self", "--prompts", "p", "--output", "o"]


def pwopsd_blocks() -> dict:
    return workflow_config(ROOT)["studies"]["pwopsd"]["kd"]


@pytest.mark.parametrize("name", sorted(pwopsd_blocks()))
def test_pwopsd_study_trains_with_the_launchers_values(name):
    """launchers/run_*_train.sh of SaFo-Lab/PW-OPSD: lr 5e-6 (linear decay), max_grad_norm 0.1, 150 steps of
    32 prompts, temperature 1.1, top_p 0.95, top_k 20, 1,024 new tokens, LoRA 64/128, clip 0.05,
    checkpoint-100; per-device batch 4 (Qwen3-4B) or 2 (the 8B/7B launchers)."""
    config, options = kd_command.parse_args([*BASE, "--config-json", json.dumps(pwopsd_blocks()[name])])
    settings = config.as_dict()
    expected = {
        "lr": 5e-6,
        "lr_schedule": "linear",
        "grad_clip": 0.1,
        "steps": 150,
        "prompts_per_step": 32,
        "samples_per_prompt": 1,
        "temperature": 1.1,
        "top_p": 0.95,
        "top_k": 20,
        "max_new_tokens": 1024,
        "distill_temperature": 1.1,
        "clip": 0.05,
        "compat": "released",
        "lora_rank": 64,
        "lora_alpha": 128.0,
        "eval_step": 100,
        "save_steps": 25,
        "student_thinking": False,
        "teacher_thinking": True,
        "prompt_style": "pwopsd",
        "mask_pad_tokens": True,
        "loss_average": "micro_batch",
        "micro_batch_prompts": 2 if name.endswith("_mb2") else 4,
    }
    assert {key: settings[key] for key in expected} == expected and options.prompts_per_step == (32,)
    if config.loss == "reopold":
        assert (settings["reopold_lambda"], settings["reopold_beta"], settings["reopold_t_switch"]) == (0.1, 0.2, 50)
    if config.loss == "pwopsd":
        assert (settings["w_min"], settings["pw_tau"], settings["pw_s"]) == (
            (0.10 if "aggressive" in name else 0.25),
            0.30,
            0.10,
        )


def test_linear_schedule_is_transformers_default():
    """get_linear_schedule_with_warmup(0 warmup, 150 steps): lr * (150 - k) / 150 at the k-th update (0-based)."""
    args = SimpleNamespace(lr=5e-6, steps=150, lr_schedule="linear")
    assert kd_loop.learning_rate(args, 1) == 5e-6
    assert kd_loop.learning_rate(args, 101) == pytest.approx(5e-6 * 50 / 150)
    assert kd_loop.learning_rate(args, 150) == pytest.approx(5e-6 / 150)
    assert kd_loop.learning_rate(SimpleNamespace(lr=1e-3, steps=9, lr_schedule="constant"), 9) == 1e-3


def test_micro_batch_average_weighs_every_micro_batch_alike():
    long, short = torch.ones(2, 6, dtype=torch.bool), torch.zeros(2, 6, dtype=torch.bool)
    short[:, :1] = True
    step = SimpleNamespace(loss="opsd", loss_average="step")
    micro = SimpleNamespace(loss="opsd", loss_average="micro_batch")
    assert [kd_step.micro_batch_units(step, m) for m in (long, short)] == [12, 2]  # token shares 12/14, 2/14
    assert [kd_step.micro_batch_units(micro, m) for m in (long, short)] == [1, 1]  # the release: 1/2 each


def test_pwopsd_prompts_and_thinking(tmp_path):
    rows = [{"id": "a", "messages": [{"role": "user", "content": "What is 2+3?"}], "solution": "2+3=5. \\boxed{5}"}]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    student, teacher = kd_prompts.read_prompts(tmp_path / "p.jsonl", need_solution=True, style="pwopsd")
    assert student[0][0]["content"] == (
        "Problem: What is 2+3?\n\nPlease reason step by step, and put your final answer within \\boxed{}."
    )
    assert teacher[0][0]["content"] == (
        "Problem: What is 2+3?\n\nHere is a reference solution to this problem:\n=== Reference Solution Begin ===\n"
        "2+3=5. \\boxed{5}\n=== Reference Solution End ===\n"
        + PWOPSD_TRANSITION
        + "\nPlease reason step by step, and put your final answer within \\boxed{}."
    )


class R1StyleTemplate:
    """A chat template that opens <think> whatever enable_thinking says (as DeepSeek-R1-Distill's)."""

    def apply_chat_template(self, conversation, add_generation_prompt, tokenize, **extra):
        self.extra = extra
        return f"<user>{conversation[-1]['content']}<assistant><think>\n"


def test_thinking_off_closes_a_think_the_template_opens():
    tok = R1StyleTemplate()
    assert render(tok, [{"role": "user", "content": "q"}], False).endswith("<think>\n</think>\n\n")
    assert tok.extra == {"enable_thinking": False}
    assert render(tok, [{"role": "user", "content": "q"}], True).endswith("<think>\n")
    assert render(tok, [{"role": "user", "content": "q"}], None).endswith("<think>\n") and tok.extra == {}


class TinyLM(torch.nn.Module):
    """Embedding + head: enough of a causal LM for distillation_loss (base_model -> last_hidden_state)."""

    def __init__(self, seed: int, vocab: int = 11, dim: int = 5):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.embed = torch.nn.Embedding(vocab, dim)
        self.lm_head = torch.nn.Linear(dim, vocab, bias=False)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(vocab, dim, generator=gen))
            self.lm_head.weight.copy_(torch.randn(vocab, dim, generator=gen))

    def base_model(self, input_ids, attention_mask, position_ids, use_cache):
        return SimpleNamespace(last_hidden_state=self.embed(input_ids))


def test_rkl_onpolicy_learner_at_temperature_one_with_tinkers_ratio():
    """At sampling temperature 0.6: k_t = log p_sampler(y_t) (student at 0.6) - log p_T(y_t) (at 1), and the
    loss is -mean_t A_t p_new(y_t) / p_sampler(y_t) with p_new the student's at temperature 1."""
    student, teacher = TinyLM(0), TinyLM(1)
    ids = torch.tensor([[1, 2, 3, 4, 5], [1, 6, 7, 0, 0]])
    response_mask = torch.tensor([[True, True, True], [True, True, False]])
    rollouts = kd_rollouts.Rollouts(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        prompt_len=2,
        response=ids[:, 2:],
        response_mask=response_mask,
    )
    config = KDConfig(
        loss="rkl_onpolicy",
        steps=1,
        samples_per_prompt=1,
        max_new_tokens=1,
        temperature=0.6,
        lr=1.0,
        seed=0,
        chunk_tokens=2,
    )
    loss, _ = kd_step.distillation_loss(student, teacher, rollouts, config)
    loss.backward()
    got = student.lm_head.weight.grad.clone()

    student.zero_grad()
    logits_s = student.lm_head(student.embed(ids))[:, 1:-1]
    logits_t = teacher.lm_head(teacher.embed(ids))[:, 1:-1].detach()
    y = ids[:, 2:].unsqueeze(-1)
    new = torch.log_softmax(logits_s, -1).gather(-1, y).squeeze(-1)
    sampler = torch.log_softmax(logits_s.detach() / 0.6, -1).gather(-1, y).squeeze(-1)
    lp_t = torch.log_softmax(logits_t, -1).gather(-1, y).squeeze(-1)
    ref = -((-(sampler - lp_t)) * torch.exp(new - sampler) * response_mask).sum() / response_mask.sum()
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(got, student.lm_head.weight.grad)


def test_rkl_onpolicy_refuses_truncated_sampling():
    argv = [
        *BASE[:2],
        "--teacher",
        "t",
        *BASE[4:],
        "--loss",
        "rkl_onpolicy",
        "--steps",
        "1",
        "--prompts-per-step",
        "1",
        "--samples-per-prompt",
        "1",
        "--max-new-tokens",
        "1",
        "--temperature",
        "0.6",
        "--lr",
        "1",
        "--seed",
        "0",
    ]
    kd_command.parse_args(argv)
    with pytest.raises(SystemExit):
        kd_command.parse_args([*argv, "--top-p", "0.95"])


def test_response_mask_leaves_pad_tokens_out_when_asked():
    """Tokens up to the first eos; with the pad id (the release's label mask) tokens equal to it drop out,
    which is the eos itself for a tokenizer whose pad is its eos."""
    eos = 2
    response = torch.tensor([[5, 6, eos, eos], [5, eos, 7, eos]])
    assert kd_rollouts.response_mask(response, eos).tolist() == [[True, True, True, False], [True, True, False, False]]
    assert kd_rollouts.response_mask(response, eos, pad_id=eos).tolist() == [
        [True, True, False, False],
        [True, False, False, False],
    ]
    assert (
        kd_rollouts.response_mask(response, eos, pad_id=9).tolist() == kd_rollouts.response_mask(response, eos).tolist()
    )

"""The opd study as Tinker's distillation recipe (tinker-cookbook 58e781e7: recipes/distillation/
off_policy_reasoning.py and on_policy_distillation.py, distillation/datasets.py): LoRA rank 128 with
alpha 32 (scale 0.25) plus the unembedding in both stages, Adam beta2 0.95 and no gradient clip,
the qwen3 chat format without a system prompt, on-policy training continuing the SFT adapter,
prompts in file order cut at 1,024 tokens, step 80 evaluated, Qwen3-8B teacher.

The training bits run on a tiny random Qwen3 (tests/conftest.py); LLaMA-Factory's templates are its own.
"""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from motab.chat import build_prompt
from motab.jsonio import write_jsonl
from motab.plan import workflow_config
from motab.training.kd import command as kd_command
from motab.training.kd import models as kd_models
from motab.training.kd import prompts as kd_prompts
from motab.training.sft import train_args

OPD = workflow_config(Path(__file__).resolve().parents[1])["studies"]["opd"]
# Qwen3's chat template in its single-turn form (enable_thinking left at its default, True): no
# system turn unless one is given; the generation prompt is "<|im_start|>assistant\n". Tinker's
# qwen3 renderer writes the same text.
QWEN3_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def kd_args(student: Path, *extra: str, teacher: str = "t", prompts: str = "p"):
    """kd-train's arguments for the opd study's kd block (then `extra` flags)."""
    return kd_command.parse_args(
        [
            "--student",
            str(student),
            "--teacher",
            teacher,
            "--prompts",
            prompts,
            "--output",
            "o",
            "--config-json",
            json.dumps(OPD["kd"]["opd"]),
            # these tests load the teacher in-process; behind its server: tests/test_kd_teacher_server.py
            "--teacher-server",
            "false",
            *extra,
        ]
    )


def test_both_stages_use_tinkers_lora_optimizer_and_chat_settings():
    sft = train_args("Qwen/Qwen3-8B-Base", "d", "openthoughts3", "o", OPD["sft"], cpu=False)
    assert (sft["lora_rank"], sft["lora_alpha"], sft["template"]) == (128, 32, "qwen3")
    assert "lm_head" in sft["lora_target"].split(",")  # LLaMA-Factory's "all" leaves lm_head out
    assert (sft["adam_beta2"], sft["max_grad_norm"]) == (0.95, 0.0)
    kd, options = kd_args(Path("s"))
    assert OPD["kd"]["opd"]["teacher_server"] is True  # Tinker's teacher is its sampling service
    assert (kd.lora_rank, kd.lora_alpha, kd.lora_unembed, kd.lora_init) == (128, 32.0, True, "sft_adapter")
    assert (kd.adam_beta2, kd.grad_clip, kd.prompt_order, kd.max_prompt_tokens) == (0.95, 0.0, "file", 1024)
    assert (kd.steps, kd.eval_step, options.prompts_per_step, kd.samples_per_prompt) == (100, 80, (512,), 4)
    assert OPD["teacher"] == "Qwen3-8B" and OPD["runs"]["teacher"]["model"] == "Qwen3-8B"
    optimizer = kd_models.make_optimizer([torch.nn.Parameter(torch.zeros(2))], kd)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.95) and optimizer.param_groups[0]["weight_decay"] == 0.0


def test_sft_template_and_rollout_prompts_agree_token_for_token(tiny_model_dir):
    import llamafactory.data.template as lf_template
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = QWEN3_TEMPLATE  # the opd student's (Qwen3-8B-Base) template form
    question, answer = "What is 3 + 4?", "<think> 3 + 4 = 7 </think> The answer is \\boxed{7}."
    rollout = tokenizer.encode(build_prompt(tokenizer, question), add_special_tokens=False)

    def sft_prompt(name):
        template = lf_template.get_template_and_fix_tokenizer(tokenizer, DataArguments(template=name))
        prompt, _ = template.encode_oneturn(
            tokenizer, [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        )
        return prompt

    assert sft_prompt(OPD["sft"]["template"]) == rollout
    assert "You are Qwen" in tokenizer.decode(sft_prompt("qwen"))  # the default before: a system turn


@pytest.fixture(scope="module")
def untied_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with its own lm_head (Qwen3-8B-Base does not tie its embeddings)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, tie_word_embeddings=False)
    model.lm_head.weight.data = model.model.embed_tokens.weight.data.clone()
    out = tmp_path_factory.mktemp("untied")
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(str(out))
    return out


def sft_output(tiny_model_dir: Path, root: Path, rank: int, alpha: int) -> Path:
    """What `motab sft` leaves for LoRA: the merged checkpoint, and the adapter in <output>/adapter
    (adapter_config.json naming the base model, as LLaMA-Factory writes it)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(
            r=rank,
            lora_alpha=alpha,
            target_modules=list(kd_models.LORA_TARGETS) + ["lm_head"],
            init_lora_weights=False,
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
        ),
    )
    with torch.no_grad():  # a trained adapter: B no longer zero
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    out = root / "sft"
    model.save_pretrained(str(out / "adapter"))
    model.merge_and_unload().save_pretrained(str(out))
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(str(out))
    return out


def lora_b(model) -> dict[str, torch.Tensor]:
    return {n.split("lora_B")[0]: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}


def test_onpolicy_continues_the_sft_adapter_at_scale_alpha_over_rank(untied_model_dir, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    sft = sft_output(untied_model_dir, tmp_path, rank=8, alpha=2)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(sft)(input_ids=ids).logits
    args = kd_args(sft, "--lora-rank", "8", "--lora-alpha", "2", "--dtype", "float32", teacher=str(sft))
    student, _, _ = kd_models.load_models(*args, torch.device("cpu"))
    saved = lora_b(
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(untied_model_dir), str(sft / "adapter"))
    )
    continued = lora_b(student)
    assert continued.keys() == saved.keys() and any(".lm_head." in k for k in continued)
    assert all(torch.equal(continued[k], saved[k]) for k in saved)
    with torch.no_grad():
        assert torch.allclose(student(input_ids=ids).logits, merged, atol=1e-5)  # starts at the SFT model
    layer = student.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.scaling["default"] == 0.25 and student.base_model.model.lm_head.scaling["default"] == 0.25
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)

    fresh, _, _ = kd_models.load_models(
        *kd_args(
            sft, "--lora-rank", "8", "--lora-alpha", "2", "--dtype", "float32", "--lora-init", "fresh", teacher=str(sft)
        ),
        torch.device("cpu"),
    )
    assert all(not p.any() for p in lora_b(fresh).values())  # the old start: new zero adapters on merged weights
    with pytest.raises(ValueError, match="the SFT adapter has .*'r': 8.*asks for .*'r': 128"):
        kd_models.load_models(*kd_args(sft, "--dtype", "float32", teacher=str(sft)), torch.device("cpu"))
    with pytest.raises(ValueError, match="untied"):  # a LoRA on a tied lm_head would change the embeddings
        kd_models.load_models(
            *kd_args(
                tiny_model_dir,
                "--lora-rank",
                "8",
                "--lora-alpha",
                "2",
                "--lora-init",
                "fresh",
                teacher=str(tiny_model_dir),
            ),
            torch.device("cpu"),
        )
    with pytest.raises(ValueError, match="adapter_config.json not found"):
        kd_models.load_models(
            *kd_args(untied_model_dir, "--lora-rank", "8", "--lora-alpha", "2", "--dtype", "float32", teacher=str(sft)),
            torch.device("cpu"),
        )


def test_prompts_in_file_order_each_cut_to_its_first_tokens(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    long_question = "Compute 12 + 34 and then 56 + 78, step by step please. " * 4
    write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": f"q{i}", "messages": [{"role": "user", "content": q}]}
            for i, q in enumerate(["1 + 2?", long_question, "3 + 4?", "5 + 6?"])
        ],
    )
    args = kd_args(Path("s"), prompts=str(tmp_path / "p.jsonl"))
    sources = kd_prompts.prompt_sources(*args)
    assert sources[0].order == [0, 1, 2, 3]  # Tinker's PromptOnlyDataset: batches are slices of the file
    assert kd_prompts.prompt_sources(dataclasses.replace(args[0], prompt_order="shuffled"), args[1])[0].order != [
        0,
        1,
        2,
        3,
    ]
    kd_prompts.cut_prompts(sources, tokenizer, 10)
    cut = sources[0].conversations[1][0]["content"]
    assert cut == tokenizer.decode(tokenizer.encode(long_question, add_special_tokens=False)[:10])
    assert cut != long_question and sources[0].conversations[0][0]["content"] == "1 + 2?"


@pytest.mark.slow
def test_llamafactory_lora_sft_with_tinkers_settings_is_continued_by_kd_train(untied_model_dir, tmp_path):
    """The real `llamafactory-cli train` + export with the opd study's LoRA / template / optimizer keys
    (rank and cutoff made tiny): the adapter covers lm_head at alpha/rank 0.25, and kd-train's student
    continues it from exactly the SFT output's weights."""
    import json

    from transformers import AutoModelForCausalLM

    from motab.training.sft import main as sft_main

    write_jsonl(
        tmp_path / "data" / "train.jsonl",
        [
            {"instruction": f"Compute {i} + 1.", "input": "", "output": f"<think> {i} + 1 </think> {i + 1}"}
            for i in range(16)
        ],
    )
    (tmp_path / "data" / "dataset_info.json").write_text(
        json.dumps(
            {
                "toy": {
                    "file_name": "train.jsonl",
                    "columns": {"prompt": "instruction", "query": "input", "response": "output"},
                }
            }
        )
    )
    params = {key: value for key, value in OPD["sft"].items() if key not in ("deepspeed", "save_steps")} | {
        "lora_rank": 8,
        "lora_alpha": 2,
        "cutoff_len": 64,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "num_train_epochs": 1,
        "learning_rate": 1e-2,
    }
    out = tmp_path / "sft"
    assert (
        sft_main(
            [
                "--model",
                str(untied_model_dir),
                "--dataset-dir",
                str(tmp_path / "data"),
                "--dataset",
                "toy",
                "--output",
                str(out),
                "--params-json",
                json.dumps(params),
            ]
        )
        == 0
    )
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert "lm_head" in adapter["target_modules"] and adapter["lora_alpha"] / adapter["r"] == 0.25
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(out)(input_ids=ids).logits
    student, _, _ = kd_models.load_models(
        *kd_args(out, "--lora-rank", "8", "--lora-alpha", "2", "--dtype", "float32", teacher=str(out)),
        torch.device("cpu"),
    )
    with torch.no_grad():
        assert torch.allclose(student(input_ids=ids).logits, merged, atol=1e-4)
    assert any(p.any() for p in lora_b(student).values())  # a trained adapter, not a fresh one

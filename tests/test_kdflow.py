"""KDFlow's command line (as the seed's run_onpolicy_kd*.sh), the Ray start-up and the checkpoint
eval receives; KDFlow itself never runs here (no GPUs, no SGLang).

The expected flags are read off wangbing1416/MOTAB at 415a5f0: run_onpolicy_kd.sh, _akl.sh and
_dskd.sh (every `OPTS+=` line that is not commented out), with NUM_NODES/NUM_GPUS, the paths and
teacher_dp_size (8 GPUs / tp 1 there) given by the allocation.
"""

import shlex

import pytest
import torch

from motab.training.kdflow import collect_checkpoint, epoch_checkpoint, host_ip, kdflow_argv, main, ray_commands

PATHS = dict(
    student="ckpt/sft/a",
    teacher="Qwen/Qwen3-8B",
    prompts="kd_data/prompts.jsonl",
    save_path="out/kdflow",
    nodes=1,
    gpus_per_node=8,
)
# run_onpolicy_kd.sh's OPTS (NUM_NODES=1, NUM_GPUS=8), as flag -> value
SCRIPT = {
    "num_nodes": "1",
    "num_gpus_per_node": "8",
    "backend": "fsdp2",
    "train_batch_size": "16",
    "micro_train_batch_size": "1",
    "learning_rate": "2e-06",
    "lr_warmup_ratio": "0.05",
    "num_epochs": "10",
    "save_path": "out/kdflow",
    "save_steps": "100",
    "bf16": "True",
    "gradient_checkpointing": "True",
    "enable_sleep": "True",
    "student_name_or_path": "ckpt/sft/a",
    "teacher_name_or_path": "Qwen/Qwen3-8B",
    "use_liger_kernel": "True",
    "enable_thinking": "True",
    "rollout_num_engines": "8",
    "rollout_tp_size": "1",
    "rollout_batch_size": "32",
    "rollout_mem_fraction_static": "0.5",
    "n_samples_per_prompt": "5",
    "generate_max_len": "32768",
    "temperature": "0.6",
    "top_p": "0.95",
    "train_dataset_path": "kd_data/prompts.jsonl",
    "input_key": "messages",
    "apply_chat_template": "True",
    "max_len": "32768",
    "prompt_max_len": "2048",
    "preprocess_num_workers": "32",
    "kd_ratio": "1.0",
    "kd_loss_fn": "rkl",
    "kd_algorithm": "vanilla_kd",
    "teacher_tp_size": "1",
    "teacher_dp_size": "8",
    "teacher_mem_fraction_static": "0.5",
    "logging_steps": "10",
    "seed": "42",
}  # no --seed in the scripts: KDFlow's default


def as_flags(argv):
    assert argv[:3] == ["python", "-m", "kdflow.cli.train_kd_on_policy"]
    pairs = argv[3:]
    flags = dict(zip(pairs[::2], pairs[1::2]))
    assert len(flags) * 2 == len(pairs), "a flag given twice or without a value"
    return {key.removeprefix("--"): value for key, value in flags.items()}


@pytest.mark.parametrize(
    "loss,extra",
    [
        ("rkl", {}),
        ("akl", {"kd_loss_fn": "akl", "adaptive_alpha": "0.5"}),
        ("dskd", {"kd_algorithm": "dskd", "dskd_topk_vocab": "-1", "dskd_projector_lr": "0.0001"}),
    ],
)
def test_each_variant_passes_exactly_the_seed_scripts_flags(loss, extra):
    assert as_flags(kdflow_argv({"engine": "kdflow", "loss": loss}, **PATHS)) == SCRIPT | extra


def test_thinking_sampling_and_rollout_batch_are_the_scripts_not_kdflows_defaults():
    flags = as_flags(kdflow_argv({"engine": "kdflow", "loss": "rkl"}, **PATHS))
    # KDFlow's own defaults would be enable_thinking False, temperature 1.0, top_p 1.0, no dynamic bsz
    assert (flags["enable_thinking"], flags["temperature"], flags["top_p"], flags["rollout_batch_size"]) == (
        "True",
        "0.6",
        "0.95",
        "32",
    )
    assert "use_dynamic_bsz" not in flags and "max_token_len_per_gpu" not in flags  # commented out there


def test_config_overrides_and_limits():
    flags = as_flags(
        kdflow_argv(
            {
                "engine": "kdflow",
                "loss": "akl",
                "akl_mu": 0.7,
                "teacher_tp_size": 4,
                "num_epochs": 2,
                "use_dynamic_bsz": True,
                "max_token_len_per_gpu": 4096,
                "enable_thinking": False,
                "seed": 0,
            },
            **PATHS | {"nodes": 2},
        )
    )
    assert (flags["adaptive_alpha"], flags["teacher_tp_size"], flags["teacher_dp_size"]) == ("0.7", "4", "4")
    assert (flags["num_epochs"], flags["use_dynamic_bsz"], flags["max_token_len_per_gpu"]) == ("2", "True", "4096")
    assert (flags["enable_thinking"], flags["seed"], flags["rollout_num_engines"]) == ("False", "0", "16")
    with pytest.raises(ValueError, match="max_token_len_per_gpu"):
        kdflow_argv(
            {"engine": "kdflow", "loss": "rkl", "use_dynamic_bsz": True, "max_token_len_per_gpu": 16384}, **PATHS
        )
    with pytest.raises(ValueError, match="loss must be one of"):
        kdflow_argv({"engine": "kdflow", "loss": "opsd"}, **PATHS)
    with pytest.raises(ValueError, match=r"unknown keys \['temprature'\]"):
        kdflow_argv({"engine": "kdflow", "loss": "rkl", "temprature": 1.0}, **PATHS)
    with pytest.raises(ValueError, match="checkpoint_epoch"):
        kdflow_argv({"engine": "kdflow", "loss": "rkl", "checkpoint_epoch": 11}, **PATHS)


def test_ray_head_gets_an_ip_address_and_workers_join_through_srun_nodelist():
    assert ray_commands(["gpu009", "gpu010"], 8, "10.1.2.9") == [
        [
            "ray",
            "start",
            "--head",
            "--node-ip-address=10.1.2.9",
            "--port=6379",
            "--num-gpus=8",
            "--disable-usage-stats",
        ],
        [
            "srun",
            "--nodes=1",
            "--ntasks=1",
            "--overlap",
            "--nodelist=gpu010",
            "ray",
            "start",
            "--address=10.1.2.9:6379",
            "--num-gpus=8",
            "--block",
            "--disable-usage-stats",
        ],
    ]


def test_head_host_name_resolves_to_its_cluster_address_not_loopback():
    def resolver(answers):
        return lambda host, port, family: [(family, 1, 6, "", (address, 0)) for address in answers[host]]

    dns = resolver({"gpu009": ["127.0.1.1", "10.1.2.9"], "login": ["127.0.0.1"]})
    assert host_ip("gpu009", {}, dns) == "10.1.2.9"
    assert host_ip("192.168.0.4", {}, dns) == "192.168.0.4"
    assert host_ip("gpu009", {"MOTAB_RAY_HEAD_IP": "10.9.9.9"}, dns) == "10.9.9.9"
    with pytest.raises(ValueError, match="only to loopback.*MOTAB_RAY_HEAD_IP"):
        host_ip("login", {}, dns)
    assert host_ip("127.0.0.1") == "127.0.0.1"


def test_dry_run_writes_the_script_from_a_slurm_allocation(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[009-010]")
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "8")
    monkeypatch.setenv("MOTAB_RAY_HEAD_IP", "10.1.2.9")
    out = tmp_path / "kd"
    assert (
        main(
            [
                "--student",
                "ckpt/sft/a",
                "--teacher",
                "Qwen/Qwen3-32B",
                "--prompts",
                "kd_data/prompts.jsonl",
                "--output",
                str(out),
                "--params-json",
                '{"engine": "kdflow", "loss": "rkl"}',
                "--dry-run",
            ]
        )
        == 0
    )
    script = (tmp_path / ".kd.tmp" / "kdflow_command.sh").read_text().splitlines()
    assert script[2].startswith("ray start --head --node-ip-address=10.1.2.9")
    assert "--nodelist=gpu010" in script[3] and script[3].endswith("--block --disable-usage-stats &")
    command = shlex.split(script[4])
    flags = as_flags(command)
    assert (flags["num_nodes"], flags["save_path"]) == ("2", str(tmp_path / ".kd.tmp" / "kdflow"))
    assert script[5] == "ray stop" and not out.exists()


def kdflow_save(model, tokenizer, folder):
    """What KDFlow's FSDP strategy save_model writes: save_pretrained, config.json, tokenizer."""
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def test_the_chosen_epoch_becomes_a_loadable_checkpoint(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    work = tmp_path / ".kd.tmp"
    states = {}
    for epoch in (1, 2):  # KDFlow's layout: epoch_N, a save_steps checkpoint, rollout_data
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        with torch.no_grad():
            model.lm_head.weight.add_(float(epoch))
        kdflow_save(model, tokenizer, work / "kdflow" / f"epoch_{epoch}")
        states[epoch] = model.lm_head.weight.clone()
    (work / "kdflow" / "rollout_data").mkdir()
    (work / "kdflow" / "rollout_data" / "1.jsonl").write_text("{}\n")
    with pytest.raises(FileNotFoundError, match=r"epoch_3.*holds \['epoch_1', 'epoch_2', 'rollout_data'\]"):
        epoch_checkpoint(work / "kdflow", 3)
    assert collect_checkpoint(work, 2, str(tiny_model_dir))["how"] == "moved"
    loaded = AutoModelForCausalLM.from_pretrained(work)  # the folder eval receives
    assert torch.equal(loaded.lm_head.weight, states[2])
    assert (work / "kdflow" / "epoch_1").is_dir() and (work / "kdflow" / "rollout_data" / "1.jsonl").is_file()


def test_a_lora_epoch_is_merged_into_the_student(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], init_lora_weights=False))
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        expected = peft(input_ids=ids).logits
    work = tmp_path / ".kd.tmp"
    kdflow_save(peft, tokenizer, work / "kdflow" / "epoch_1")
    assert collect_checkpoint(work, 1, str(tiny_model_dir))["how"] == "merged LoRA adapter"
    with torch.no_grad():
        got = AutoModelForCausalLM.from_pretrained(work)(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-5)

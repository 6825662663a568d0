"""KDFlow's command line for each variant (rkl / akl / dskd) and the Ray start-up; never run here."""

import pytest

from motab.training.kdflow import kdflow_argv, main, ray_commands

PATHS = dict(student="ckpt/sft/a", teacher="Qwen/Qwen3-32B", prompts="kd_data/prompts.jsonl", save_path="out.tmp",
             nodes=2, gpus_per_node=8)
COMMON = ["python", "-m", "kdflow.cli.train_kd_on_policy",
          "--student_name_or_path", "ckpt/sft/a", "--teacher_name_or_path", "Qwen/Qwen3-32B",
          "--train_dataset_path", "kd_data/prompts.jsonl", "--input_key", "messages", "--apply_chat_template", "True",
          "--save_path", "out.tmp", "--seed", "0", "--bf16", "True", "--num_nodes", "2", "--num_gpus_per_node", "8",
          "--backend", "fsdp2", "--num_epochs", "10", "--learning_rate", "2e-06", "--train_batch_size", "16",
          "--enable_sleep", "True", "--use_dynamic_bsz", "True", "--max_token_len_per_gpu", "8192",
          "--gradient_checkpointing", "True", "--rollout_num_engines", "16", "--rollout_tp_size", "1",
          "--rollout_batch_size", "16", "--n_samples_per_prompt", "5", "--generate_max_len", "32768",
          "--temperature", "1.0", "--kd_ratio", "1.0"]


@pytest.mark.parametrize("loss,tail", [
    ("rkl", ["--kd_algorithm", "vanilla_kd", "--kd_loss_fn", "rkl", "--teacher_tp_size", "1"]),
    ("akl", ["--kd_algorithm", "vanilla_kd", "--kd_loss_fn", "akl", "--teacher_tp_size", "1",
             "--adaptive_alpha", "0.5"]),
    ("dskd", ["--kd_algorithm", "dskd", "--kd_loss_fn", "rkl", "--teacher_tp_size", "1",
              "--dskd_token_align", "eta"]),
])
def test_each_variant_gets_the_seed_defaults_and_its_own_flags(loss, tail):
    assert kdflow_argv({"engine": "kdflow", "loss": loss}, **PATHS) == COMMON + tail


def test_config_overrides_and_limits():
    argv = kdflow_argv({"engine": "kdflow", "loss": "akl", "akl_mu": 0.7, "teacher_tp_size": 4, "num_epochs": 2,
                        "max_token_len_per_gpu": 4096}, **PATHS)
    assert argv[argv.index("--adaptive_alpha") + 1] == "0.7" and argv[argv.index("--teacher_tp_size") + 1] == "4"
    assert argv[argv.index("--num_epochs") + 1] == "2" and argv[argv.index("--max_token_len_per_gpu") + 1] == "4096"
    with pytest.raises(ValueError, match="max_token_len_per_gpu"):
        kdflow_argv({"engine": "kdflow", "loss": "rkl", "max_token_len_per_gpu": 16384}, **PATHS)
    with pytest.raises(ValueError, match="loss must be one of"):
        kdflow_argv({"engine": "kdflow", "loss": "opsd"}, **PATHS)


def test_ray_head_on_the_first_node_and_workers_join_it():
    assert ray_commands(["gpu009", "gpu010"], 8) == [
        ["ray", "start", "--head", "--node-ip-address=gpu009", "--port=6379", "--num-gpus=8", "--disable-usage-stats"],
        ["srun", "--nodes=1", "--ntasks=1", "-w=gpu010", "ray", "start", "--address=gpu009:6379", "--num-gpus=8",
         "--block", "--disable-usage-stats"]]


def test_dry_run_writes_the_script_from_a_slurm_allocation(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[009-010]")
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "8")
    out = tmp_path / "kd"
    assert main(["--student", "ckpt/sft/a", "--teacher", "Qwen/Qwen3-32B", "--prompts", "kd_data/prompts.jsonl",
                 "--output", str(out), "--params-json", '{"engine": "kdflow", "loss": "rkl"}', "--dry-run"]) == 0
    script = (tmp_path / ".kd.tmp" / "kdflow_command.sh").read_text().splitlines()
    assert script[2].startswith("ray start --head --node-ip-address=gpu009")
    assert script[3].endswith("--block --disable-usage-stats &")
    assert script[4].startswith("python -m kdflow.cli.train_kd_on_policy") and "--num_nodes 2" in script[4]
    assert script[5] == "ray stop" and not out.exists()

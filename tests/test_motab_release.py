"""The motab study against the MOTAB release (github.com/wangbing1416/MOTAB @ HEAD of the stored
snapshot): its SFT YAML equals SFT/sft_config.yaml key for key, its dataset registration the README's,
and its EvalScope TaskConfigs the per-dataset settings of eval/run_evalscope.py as eval/eval_all.sh
calls it (EVAL_N_SAMPLES=8). The released values are written here as figures, read off those files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dryrun import REPO

from motab.data.reorganize import dataset_info
from motab.evaluation.evalscope_engine import task_config_dict
from motab.evaluation.settings import evalscope_dataset_args, generation_settings
from motab.plan import compose, workflow_config
from motab.training.sft import train_args, train_yaml

CONFIG = compose(workflow_config(REPO), REPO)
STUDY = CONFIG["studies"]["motab"]

# SFT/sft_config.yaml, every key but the run's own paths (model_name_or_path, output_dir, dataset)
RELEASED_SFT = {
    "enable_liger_kernel": True,
    "stage": "sft",
    "do_train": True,
    "finetuning_type": "full",
    "ddp_timeout": 180000000,
    "flash_attn": "fa2",
    "template": "qwen",
    "cutoff_len": 32768,
    "packing": True,
    "overwrite_cache": True,
    "preprocessing_num_workers": 64,
    "seed": 42,
    "logging_steps": 1,
    "save_strategy": "epoch",
    "plot_loss": True,
    "overwrite_output_dir": False,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "learning_rate": 5.0e-5,
    "adam_beta1": 0.9,
    "adam_beta2": 0.95,
    "adam_epsilon": 1.0e-8,
    "max_grad_norm": 1.0,
    "weight_decay": 0.1,
    "num_train_epochs": 6.0,
    "lr_scheduler_type": "cosine_with_min_lr",
    "lr_scheduler_kwargs": {"min_lr": 1.0e-6},
    "warmup_ratio": 0.05,
    "bf16": True,
    "save_only_model": False,
}
# keys of ours the release leaves at LLaMA-Factory's / transformers' defaults (or sets elsewhere)
OURS_ONLY = {
    "dataset_dir",
    "report_to",
    "dataloader_num_workers",
    "deepspeed",
    "model_name_or_path",
    "output_dir",
    "dataset",
}


def written_sft_yaml(tmp_path: Path) -> dict:
    args = train_args(
        "Qwen/Qwen3-4B", "results/motab/sft_data/motab", "motab", str(tmp_path / "ckpt"), STUDY["sft"], cpu=False
    )
    path = tmp_path / "llamafactory_train.yaml"
    path.write_text(train_yaml(args))
    return yaml.safe_load(path.read_text())


def test_sft_yaml_equals_the_released_sft_config_key_for_key(tmp_path):
    written = written_sft_yaml(tmp_path)
    mismatched = {
        key: (written.get(key, "<missing>"), value)
        for key, value in RELEASED_SFT.items()
        if written.get(key, "<missing>") != value or (type(written.get(key)) is bool) != (type(value) is bool)
    }
    assert not mismatched, f"ours vs released: {mismatched}"
    assert set(written) - set(RELEASED_SFT) == OURS_ONLY
    assert Path(written["deepspeed"]).name == "ds_z3_config.json"  # the release's ZeRO-3 file name


def test_every_sft_run_of_the_grid_trains_with_the_released_config(tmp_path):
    # one study-wide block: both students, every gamma and MOTAB share it
    sft_runs = [r for r, spec in STUDY["runs"].items() if "sft" in spec and "epoch" not in spec]
    assert len(sft_runs) == 13
    assert {STUDY["runs"][r].get("from", STUDY["student"]) for r in sft_runs} == {"Qwen3-4B", "Qwen2-7B"}


def test_dataset_registration_is_the_readmes():
    # README, "Dataset Registration": {"motab_train": {"file_name": ..., "columns": {"prompt": "instruction",
    # "response": "output"}}}; ours adds query -> input (always "" in our alpaca rows)
    entry = dataset_info("motab_train", "train.jsonl")["motab_train"]
    assert entry["file_name"] == "train.jsonl"
    assert {k: entry["columns"][k] for k in ("prompt", "response")} == {"prompt": "instruction", "response": "output"}


# eval/run_evalscope.py's create_task_config with eval_all.sh's EVAL_N_SAMPLES=8 and run_evaluation.sh's
# defaults (temperature 0.6, max_tokens 32768, batch 64); top_k -1 is run_evalscope.py's --top_k default
RELEASED_EVAL = {
    "math_500": {"n": 1, "top_k": -1},
    "aime24": {"n": 8},
    "aime25": {"n": 8},
    "amc": {"n": 8},
    "gpqa_diamond": {"n": 8, "top_k": -1},
}
RELEASED_COMMON = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768}
RELEASED_DATASET_ARGS = {"filters": {"remove_until": "</think>"}, "aggregation": "mean_and_pass_at_k"}


def study_task_configs() -> dict[str, tuple[int, dict]]:
    """{EvalScope dataset: (runs per problem, the TaskConfig of one run)} as rules/eval.smk builds them."""
    eval_cfg = STUDY["eval"]
    out = {}
    for bench in eval_cfg["benchmarks"]:
        settings = generation_settings(eval_cfg, bench, 0)
        dataset = CONFIG["benchmarks"][bench]["evalscope"]
        out[dataset] = (
            settings["n"],
            task_config_dict(
                "http://127.0.0.1:30000",
                dataset,
                "/data/" + bench,
                "work",
                settings["temperature"],
                settings["top_p"],
                settings["max_tokens"],
                0,
                None,
                settings["batch_problems"],
                top_k=settings.get("top_k"),
                extra_args=evalscope_dataset_args(eval_cfg, CONFIG["benchmarks"][bench]),
            ),
        )
    return out


def test_evalscope_task_configs_match_the_released_per_dataset_settings():
    configs = study_task_configs()
    assert sorted(configs) == sorted(RELEASED_EVAL)
    assert STUDY["eval"]["engine"] == "evalscope"
    for dataset, released in RELEASED_EVAL.items():
        n, config = configs[dataset]
        generation = config["generation_config"]
        # n samples = n EvalScope runs of one sample each (one seed per run; evalscope_engine.py)
        assert n == released["n"] and generation["n"] == 1, dataset
        assert {k: generation[k] for k in RELEASED_COMMON} == RELEASED_COMMON, dataset
        # where the release sets no top_k, SGLang applied the models' generation_config (top_k 20): stated
        assert generation["top_k"] == released.get("top_k", 20), dataset
        assert {k: v for k, v in config["dataset_args"][dataset].items() if k != "dataset_id"} == RELEASED_DATASET_ARGS
        assert config["eval_batch_size"] == 64


def test_evalscope_accepts_the_task_configs():
    from evalscope import TaskConfig

    for dataset, (_, config) in study_task_configs().items():
        task = TaskConfig(**config)
        assert task.dataset_args[dataset]["filters"] == {"remove_until": "</think>"}
        assert task.generation_config.top_p == 0.95


@pytest.mark.parametrize("bench", ["math500", "gpqa_diamond"])
def test_native_engine_gets_the_same_settings(bench):
    # the native engine reads the same generation_settings (eval-generate --top-k, eval-grade --remove-until)
    settings = generation_settings(STUDY["eval"], bench, 0)
    assert settings["top_k"] == -1 and settings["top_p"] == 0.95 and STUDY["eval"]["remove_until"] == "</think>"


def test_the_table_has_the_papers_columns():
    from motab.plan.tables import table_spec

    spec = table_spec("motab", STUDY, CONFIG["benchmarks"], "main")
    assert [b["label"] for b in spec["benchmarks"]] == ["MATH-500", "AIME24", "AIME25", "AMC", "GPQA-Diamond"]
    assert spec["metric"] == "avg@n"


def test_avg_at_n_reads_each_benchmarks_own_n(tmp_path):
    """MATH-500 sampled once, AIME 8 times: `avg@n` takes avg@1 from the one and avg@8 from the other."""
    import json

    from motab.tables.build import build_tables

    spec = {
        "title": "t",
        "metric": "avg@n",
        "scale": 100,
        "decimals": 2,
        "rows": [{"run": "r", "label": "R"}],
        "benchmarks": [{"name": "math500", "label": "MATH-500"}, {"name": "aime24", "label": "AIME24"}],
    }
    paths = []
    for bench, n, value in (("math500", 1, 0.9), ("aime24", 8, 0.25)):
        path = tmp_path / f"{bench}.json"
        path.write_text(
            json.dumps(
                {
                    "run": "r",
                    "benchmark": bench,
                    "seed": 0,
                    "n_samples": n,
                    "metrics": {f"avg@{n}": value, "avg@4": 0.0},
                }
            )
        )
        paths.append(path)
    markdown = build_tables(spec, paths)["md"]
    row = next(line for line in markdown.splitlines() if line.startswith("| R "))
    assert "90.00" in row and "25.00" in row and "57.50" in row  # Avg = (90 + 25) / 2


def test_dry_run_plans_the_whole_grid():
    """2 students x (5 SKD gammas + MOTAB) synthesized and trained, MOTAB evaluated at epochs 1-5, plus the
    teacher-only SFT: 13 synthesis and 13 SFT jobs; 25 table rows x 5 benchmarks x 1 seed evaluations."""
    from collections import Counter

    from dryrun import planned

    jobs = planned(REPO, [REPO / "config.yaml"], targets=("results/motab/tables/main.md",))
    counts = Counter(rule for rule, _ in jobs)
    assert (counts["synth"], counts["sft"], counts["eval_grade"]) == (13, 13, 125)
    evaluated = {dict(wildcards)["run"] for rule, wildcards in jobs if rule == "eval_grade"}
    # one EvalScope job per evaluated run (its 5 benchmarks on one server), none per file
    assert counts["eval_evalscope"] == 0 and counts["eval_evalscope_run_motab"] == len(evaluated) == 25
    assert {dict(wc)["run"] for rule, wc in jobs if rule == "eval_evalscope_run_motab"} == evaluated
    assert {f"sft_motab{s}_ep{e}" for s in ("", "_7b") for e in range(1, 6)} <= evaluated
    assert {f"sft_skd{s}_gamma{g}" for s in ("", "_7b") for g in ("0p6", "0p7", "0p8", "0p9", "1p0")} <= evaluated
    assert not {"sft_motab", "sft_motab_7b"} & evaluated  # the final (6th) epoch is not a row, as in eval_all.sh


def test_a_per_benchmark_entry_for_no_benchmark_is_named():
    from motab.evaluation.settings import per_benchmark_errors

    assert per_benchmark_errors("motab", STUDY["eval"]) == []
    bad = dict(STUDY["eval"], per_benchmark={"math_500": {"n": 1}})
    assert per_benchmark_errors("motab", bad) == [
        "studies.motab.eval.per_benchmark.math_500: not a benchmark of the study's eval "
        "(benchmarks: ['math500', 'aime24', 'aime25', 'amc', 'gpqa_diamond'])"
    ]


def test_one_server_start_per_runs_eval_in_the_slurm_plan():
    """The slurm plan starts one server per evaluated run: one eval-evalscope command (one server
    command, GPUs of the run's model tp) writing all 5 benchmarks' files, each with its own settings."""
    import json
    import re
    import subprocess
    import sys

    snakemake = str(Path(sys.executable).with_name("snakemake"))
    proc = subprocess.run(
        [snakemake, "-n", "-p", "--profile", "profiles/slurm", "results/motab/tables/main.md"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = [line for line in proc.stdout.splitlines() if " -m motab eval-evalscope " in line]
    assert len(commands) == 25 and all(c.count("--server-command") == 1 for c in commands)
    runs = set()
    for command in commands:
        jobs = json.loads(re.search(r"--jobs-json '(.*?)' --server-command", command).group(1))
        assert [job["name"] for job in jobs] == ["math500", "aime24", "aime25", "amc", "gpqa_diamond"]
        run = re.search(r"results/motab/eval/([^/]+)/math500/seed0\.evalscope\.responses\.jsonl", command).group(1)
        runs.add(run)
        # each benchmark keeps its own EvalScope settings (n = 1 and top_k -1 on MATH-500, top_k 20 on AIME)
        assert (jobs[0]["n"], jobs[0]["top_k"], jobs[1]["n"], jobs[1]["top_k"]) == (1, -1, 8, 20)
        gpus = json.loads(re.search(r"--placement '(.*?)'", command).group(1))["model"]["gpus"]
        assert len(gpus) == (4 if run == "teacher" else 1)  # Qwen3-32B on tp 4, the students on 1
    assert len(runs) == 25

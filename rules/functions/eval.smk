# The input functions and parameters of rules/eval.smk (Snakemake's lint: functions apart from rules).
from types import SimpleNamespace


def eval_cfg(wildcards):
    return study_cfg(wildcards.study)["eval"]


def generation_params(wildcards):
    """Sampling settings of one benchmark: the study's, with its `per_benchmark` entry on top
    (the MOTAB release's per-dataset TaskConfigs); top_k only where config sets it."""
    cfg = eval_cfg(wildcards)
    optional = {key: cfg[key] for key in ("prompt", "enable_thinking") if key in cfg}
    # max_tokens within the run's model context (models.<name>.context_length)
    model = config["models"].get(run_model_name(wildcards.study, wildcards.run), {})
    settings = plan.generation_settings(cfg, wildcards.bench, wildcards.seed)
    fitted = plan.fit_to_context(settings, model.get("context_length"), cfg.get("prompt_tokens", plan.PROMPT_TOKENS))
    return fitted | optional


def top_k_arg(wildcards):
    top_k = generation_params(wildcards).get("top_k")
    return "" if top_k is None else f" --top-k {top_k}"


def grade_settings(wildcards):
    """eval-grade's answer options, where set: EvalScope's remove_until filter, the multiple-choice grader."""
    settings = {}
    if eval_cfg(wildcards).get("remove_until"):
        settings["remove_until"] = eval_cfg(wildcards)["remove_until"]
    if config["benchmarks"][wildcards.bench].get("format") == "gpqa_diamond":
        settings["grader"] = "multiple_choice"
    return settings


def grade_args(wildcards):
    return "".join(
        f" --{key.replace('_', '-')} {shlex.quote(value)}" for key, value in grade_settings(wildcards).items()
    )


def prompt_args(wildcards):
    """eval-generate flags for the study's eval prompt, thinking switch and over-long problems
    (absent: the defaults)."""
    cfg = eval_cfg(wildcards)
    # as JSON: a template's newlines would otherwise split the printed shell command over lines
    args = ["--prompt-template-json", json.dumps(cfg["prompt"])] if "prompt" in cfg else []
    if "enable_thinking" in cfg:
        args += ["--enable-thinking", "true" if cfg["enable_thinking"] else "false"]
    if "over_long" in cfg:  # skip (the default) or truncate
        args += ["--over-long", cfg["over_long"]]
    return " ".join(shlex.quote(a) for a in args)


def grading_params(wildcards):
    """Answer extraction (a mode, or modes side by side; per benchmark or for the study) and comparison."""
    cfg = eval_cfg(wildcards)
    spec = cfg.get("extraction", "strict")
    if isinstance(spec, dict):
        spec = spec.get(wildcards.bench, spec.get("default", "strict"))
    modes = [spec] if isinstance(spec, str) else list(spec)
    return {"extraction": ",".join(modes), "equivalence": cfg.get("equivalence", "motab")}


def eval_servers(wildcards):
    """The one server of a run's evaluation: the run's weights on its model's tp/dp."""
    return [("model", run_model_name(wildcards.study, wildcards.run))]


def eval_gpus(wildcards, servers):
    """GPUs an evaluation job asks for: its server's tp x dp (at most the stage's gpus), 0 on CPU."""
    return stage_placement(wildcards.study, "eval_generate", servers)[1]


def run_model_revision(wildcards):
    """The hub revision of a run's weights when they are a pinned hub model (else None)."""
    return STUDIES[wildcards.study].run_model_revision(wildcards.run)


def eval_group(study):
    """run (default): one eval_generate_run job per run serves all its benchmarks and seeds on one
    server; file: one eval_generate job per (run, benchmark, seed), so a new seed generates only it."""
    return study_cfg(study)["eval"].get("group", "run")


def _study_regex(studies):
    return "|".join(re.escape(s) for s in sorted(studies)) or "(?!)"  # (?!) never matches


def run_generation_jobs(study, run):
    """The generation jobs of one run, one per (benchmark, seed), each with its own sampling."""
    cfg = study_cfg(study)["eval"]
    jobs = []
    for bench in cfg["benchmarks"]:
        for seed in cfg["seeds"]:
            wc = SimpleNamespace(study=study, run=run, bench=bench, seed=str(seed))
            jobs.append(
                {
                    "problems": f"results/{study}/benchmarks/{bench}.jsonl",
                    "output": f"results/{study}/eval/{run}/{bench}/seed{seed}.responses.jsonl",
                    "top_k": cfg.get("top_k", -1),
                    # the eval prompt and thinking switch are the study's: flags (prompt_args)
                    **{k: v for k, v in generation_params(wc).items() if k not in ("prompt", "enable_thinking")},
                }
            )
    return jobs


def eval_engine(wildcards):
    return eval_cfg(wildcards).get("engine", "native")


def responses_file(wildcards):
    """The responses the grader reads: the native engine's, or those converted from EvalScope."""
    stem = f"results/{wildcards.study}/eval/{wildcards.run}/{wildcards.bench}/seed{wildcards.seed}"
    return f"{stem}.evalscope.responses.jsonl" if eval_engine(wildcards) == "evalscope" else f"{stem}.responses.jsonl"


def evalscope_python(wildcards):
    return eval_cfg(wildcards).get("evalscope_python", PYTHON)


def evalscope_dataset(wildcards):
    name = config["benchmarks"][wildcards.bench].get("evalscope")
    if not name:
        raise ValueError(
            f"benchmarks.{wildcards.bench}.evalscope: the EvalScope benchmark name is needed "
            f"by studies.{wildcards.study}.eval.engine: evalscope"
        )
    return name


def evalscope_args(wildcards):
    return plan.evalscope_dataset_args(eval_cfg(wildcards), config["benchmarks"][wildcards.bench])


def evalscope_run_jobs(study, run):
    """The EvalScope jobs of one run, one per (benchmark, seed), each with its benchmark's own
    EvalScope name, dataset_args and sampling (what eval_evalscope passes as flags)."""
    cfg = study_cfg(study)["eval"]
    jobs = []
    for bench in cfg["benchmarks"]:
        for seed in cfg["seeds"]:
            wc = SimpleNamespace(study=study, run=run, bench=bench, seed=str(seed))
            gen, stem = generation_params(wc), f"results/{study}/eval/{run}/{bench}/seed{seed}"
            jobs.append(
                {
                    "benchmark_file": bench_location(wc),
                    "format": bench_cfg(wc).get("format", "generic"),
                    "name": bench,
                    "dataset": evalscope_dataset(wc),
                    "split": bench_cfg(wc).get("split", "test"),
                    "limit": bench_cfg(wc).get("limit", 0),
                    "dataset_args": evalscope_args(wc),
                    "output": f"{stem}.evalscope.responses.jsonl",
                    "work_dir": f"{stem}.evalscope",
                    "n": gen["n"],
                    "temperature": gen["temperature"],
                    "top_p": gen["top_p"],
                    "top_k": gen.get("top_k"),
                    "max_tokens": gen["max_tokens"],
                    "seed": gen["seed"],
                    "batch_size": gen["batch_problems"],
                }
            )
    return jobs


def evalscope_bench_inputs(study):
    """The local benchmark files of a study's eval (a hub id is read by the job: no input)."""
    files = [bench_input(SimpleNamespace(study=study, bench=bench)) for bench in study_cfg(study)["eval"]["benchmarks"]]
    return [f for f in files if f]


def critic_cfg(wildcards):
    cfg = eval_cfg(wildcards).get("critic")
    if not cfg:
        raise ValueError(f"studies.{wildcards.study}.eval.critic: needed by a table with metric critic")
    return {"max_tokens": 16, "temperature": 0.0} | cfg


def per_study_rule(prefix, study):
    """The name of a study's own rule (a study name may hold characters a rule name cannot)."""
    return "_".join([prefix, re.sub(r"\W", "_", study)])

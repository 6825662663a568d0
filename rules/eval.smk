# Evaluation in two rules: generation (GPU hours on a cluster) and grading (CPU seconds), so a
# change to answer extraction or metrics regrades without regenerating.
from types import SimpleNamespace


def eval_cfg(wildcards):
    return study_cfg(wildcards.study)["eval"]


def generation_params(wildcards):
    """Sampling settings of one benchmark: the study's, with its `per_benchmark` entry on top
    (the MOTAB release's per-dataset TaskConfigs); top_k only where config sets it."""
    from motab.evaluation.settings import generation_settings

    cfg = eval_cfg(wildcards)
    optional = {key: cfg[key] for key in ("prompt", "enable_thinking") if key in cfg}
    return generation_settings(cfg, wildcards.bench, wildcards.seed) | optional


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
    return "".join(f" --{key.replace('_', '-')} {shlex.quote(value)}" for key, value in grade_settings(wildcards).items())


def prompt_args(wildcards):
    """eval-generate flags for the study's eval prompt and thinking switch (absent: the defaults)."""
    cfg = eval_cfg(wildcards)
    # as JSON: a template's newlines would otherwise split the printed shell command over lines
    args = ["--prompt-template-json", json.dumps(cfg["prompt"])] if "prompt" in cfg else []
    if "enable_thinking" in cfg:
        args += ["--enable-thinking", "true" if cfg["enable_thinking"] else "false"]
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
    spec = run_cfg(wildcards.study, wildcards.run)
    return config["models"].get(spec.get("model"), {}).get("revision") if "model" in spec else None


def eval_group(study):
    """run (default): one eval_generate_run job per run serves all its benchmarks and seeds on one
    server; file: one eval_generate job per (run, benchmark, seed), so a new seed generates only it."""
    return study_cfg(study)["eval"].get("group", "run")


def _study_regex(studies):
    return "|".join(re.escape(s) for s in sorted(studies)) or "(?!)"  # (?!) never matches


PER_FILE_EVAL = [s for s in config["studies"] if eval_group(s) == "file"]
# studies whose runs generate in one job each, per engine (native: eval_generate_run_<study>,
# evalscope: eval_evalscope_run_<study>)
PER_RUN_EVAL = [s for s in config["studies"] if eval_group(s) == "run"
                and study_cfg(s)["eval"].get("engine", "native") == "native"]
PER_RUN_EVALSCOPE = [s for s in config["studies"] if eval_group(s) == "run"
                     and study_cfg(s)["eval"].get("engine", "native") == "evalscope"]


rule eval_generate:
    conda:
        "../envs/eval.yaml"
    container:
        stage_container("eval")
    wildcard_constraints:
        study=_study_regex(PER_FILE_EVAL),
    input:
        problems="results/{study}/benchmarks/{bench}.jsonl",
        model=lambda wc: checkpoint_inputs(wc.study, wc.run),
        code=code_inputs("eval-generate", "serve"),
    output:
        "results/{study}/eval/{run}/{bench}/seed{seed}.responses.jsonl",
    params:
        generation=lambda wc: as_json(generation_params(wc)),
        cfg=generation_params,
        top_k=lambda wc: generation_params(wc).get("top_k", -1),
        model=lambda wc: checkpoint_location(wc.study, wc.run),
        server=lambda wc: server_command(wc.study, run_model_name(wc.study, wc.run), "eval_generate", "model"),
        placement=lambda wc: placement_arg(wc.study, "eval_generate", eval_servers(wc)),
        prompt=prompt_args,
    log:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.generate.log",
    benchmark:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.generate.benchmark.tsv"
    threads: stage_threads("eval_generate")
    resources:
        **stage_resources("eval_generate", gpu=lambda wc: eval_gpus(wc, eval_servers(wc))),
    shell:
        "{MOTAB} eval-generate --model {params.model:q} --problems {input.problems} --output {output}"
        " --n {params.cfg[n]} --temperature {params.cfg[temperature]} --top-p {params.cfg[top_p]}"
        " --top-k {params.top_k} --max-tokens {params.cfg[max_tokens]} --seed {params.cfg[seed]}"
        " --batch-problems {params.cfg[batch_problems]} --server-command {params.server:q} {params.prompt}"
        " {params.placement}"
        " --server-log logs/{wildcards.study}/eval/{wildcards.run}/{wildcards.bench}/seed{wildcards.seed}.server.log"
        " > {log} 2>&1"


def run_generation_jobs(study, run):
    """The generation jobs of one run, one per (benchmark, seed), each with its own sampling."""
    cfg = study_cfg(study)["eval"]
    jobs = []
    for bench in cfg["benchmarks"]:
        for seed in cfg["seeds"]:
            wc = SimpleNamespace(study=study, run=run, bench=bench, seed=str(seed))
            jobs.append({"problems": f"results/{study}/benchmarks/{bench}.jsonl",
                         "output": f"results/{study}/eval/{run}/{bench}/seed{seed}.responses.jsonl",
                         "top_k": cfg.get("top_k", -1),
                         # the eval prompt and thinking switch are the study's: flags (prompt_args)
                         **{k: v for k, v in generation_params(wc).items() if k not in ("prompt", "enable_thinking")}})
    return jobs


for _study in PER_RUN_EVAL:
    _eval = study_cfg(_study)["eval"]

    rule:
        # One server start for all of a run's benchmarks x seeds (the server is the slow part to
        # start: minutes for a 32B model under SGLang); grading stays one job per file (eval_grade).
        name:
            "eval_generate_run_" + re.sub(r"\W", "_", _study)
        conda:
            "../envs/eval.yaml"
        container:
            stage_container("eval")
        wildcard_constraints:
            study=re.escape(_study),
        input:
            problems=[f"results/{{study}}/benchmarks/{bench}.jsonl" for bench in _eval["benchmarks"]],
            model=lambda wc: checkpoint_inputs(wc.study, wc.run),
            code=code_inputs("eval-generate", "serve"),
        output:
            [f"results/{{study}}/eval/{{run}}/{bench}/seed{seed}.responses.jsonl"
             for bench in _eval["benchmarks"] for seed in _eval["seeds"]],
        params:
            jobs=lambda wc: as_json(run_generation_jobs(wc.study, wc.run)),
            model=lambda wc: checkpoint_location(wc.study, wc.run),
            server=lambda wc: server_command(wc.study, run_model_name(wc.study, wc.run), "eval_generate", "model"),
            placement=lambda wc: placement_arg(wc.study, "eval_generate", eval_servers(wc)),
            prompt=prompt_args,
        log:
            "logs/{study}/eval/{run}/generate.log",
        benchmark:
            "logs/{study}/eval/{run}/generate.benchmark.tsv"
        threads: stage_threads("eval_generate")
        resources:
            **stage_resources("eval_generate", gpu=lambda wc: eval_gpus(wc, eval_servers(wc))),
        shell:
            "{MOTAB} eval-generate --model {params.model:q} --jobs-json {params.jobs:q}"
            " --server-command {params.server:q} {params.placement} {params.prompt}"
            " --server-log logs/{wildcards.study}/eval/{wildcards.run}/generate.server.log > {log} 2>&1"


def eval_engine(wildcards):
    return eval_cfg(wildcards).get("engine", "native")


def responses_file(wildcards):
    """The responses the grader reads: the native engine's, or those converted from EvalScope."""
    stem = f"results/{wildcards.study}/eval/{wildcards.run}/{wildcards.bench}/seed{wildcards.seed}"
    return f"{stem}.evalscope.responses.jsonl" if eval_engine(wildcards) == "evalscope" else f"{stem}.responses.jsonl"


def evalscope_python(wildcards):
    return eval_cfg(wildcards).get("evalscope_python", PY)


def evalscope_dataset(wildcards):
    name = config["benchmarks"][wildcards.bench].get("evalscope")
    if not name:
        raise ValueError(f"benchmarks.{wildcards.bench}.evalscope: the EvalScope benchmark name is needed "
                         f"by studies.{wildcards.study}.eval.engine: evalscope")
    return name


def evalscope_args(wildcards):
    from motab.evaluation.settings import evalscope_dataset_args

    return evalscope_dataset_args(eval_cfg(wildcards), config["benchmarks"][wildcards.bench])


rule eval_evalscope:
    # EvalScope's TaskConfig against the server's OpenAI endpoint; its reviews become the native
    # responses file (task_config.json, reviews and EvalScope's own report stay in the work dir).
    # Studies with eval.group: file (one job per file); group: run is eval_evalscope_run_<study>.
    conda:
        "../envs/eval.yaml"
    container:
        stage_container("eval")
    wildcard_constraints:
        study=_study_regex(PER_FILE_EVAL),
    input:
        benchmark=bench_input,
        model=lambda wc: checkpoint_inputs(wc.study, wc.run),
        code=code_inputs("eval-evalscope", "serve"),
    output:
        responses="results/{study}/eval/{run}/{bench}/seed{seed}.evalscope.responses.jsonl",
        work_dir=directory("results/{study}/eval/{run}/{bench}/seed{seed}.evalscope"),
    params:
        generation=lambda wc: as_json(generation_params(wc)),
        cfg=generation_params,
        location=lambda wc: bench_location(wc),
        format=lambda wc: bench_cfg(wc).get("format", "generic"),
        split=lambda wc: bench_cfg(wc).get("split", "test"),
        limit=lambda wc: bench_cfg(wc).get("limit", 0),
        dataset=evalscope_dataset,
        dataset_args=lambda wc: as_json(evalscope_args(wc)),
        top_k=top_k_arg,
        python=evalscope_python,
        model=lambda wc: checkpoint_location(wc.study, wc.run),
        server=lambda wc: server_command(wc.study, run_model_name(wc.study, wc.run), "eval_generate", "model"),
        placement=lambda wc: placement_arg(wc.study, "eval_generate", eval_servers(wc)),
    log:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.evalscope.log",
    benchmark:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.evalscope.benchmark.tsv"
    threads: stage_threads("eval_generate")
    resources:
        **stage_resources("eval_generate", gpu=lambda wc: eval_gpus(wc, eval_servers(wc))),
    shell:
        "{params.python:q} -m motab eval-evalscope --model {params.model:q} --benchmark-file {params.location:q}"
        " --format {params.format:q} --name {wildcards.bench} --dataset {params.dataset:q} --split {params.split:q}"
        " --dataset-args {params.dataset_args:q}"
        " --output {output.responses} --work-dir {output.work_dir} --limit {params.limit}"
        " --n {params.cfg[n]} --temperature {params.cfg[temperature]} --top-p {params.cfg[top_p]}"
        " --max-tokens {params.cfg[max_tokens]} --seed {params.cfg[seed]} --batch-size {params.cfg[batch_problems]}"
        "{params.top_k}"
        " --server-command {params.server:q} {params.placement}"
        " --server-log logs/{wildcards.study}/eval/{wildcards.run}/{wildcards.bench}/seed{wildcards.seed}.server.log"
        " > {log} 2>&1"


def evalscope_run_jobs(study, run):
    """The EvalScope jobs of one run, one per (benchmark, seed), each with its benchmark's own
    EvalScope name, dataset_args and sampling (what eval_evalscope passes as flags)."""
    cfg = study_cfg(study)["eval"]
    jobs = []
    for bench in cfg["benchmarks"]:
        for seed in cfg["seeds"]:
            wc = SimpleNamespace(study=study, run=run, bench=bench, seed=str(seed))
            gen, stem = generation_params(wc), f"results/{study}/eval/{run}/{bench}/seed{seed}"
            jobs.append({"benchmark_file": bench_location(wc), "format": bench_cfg(wc).get("format", "generic"),
                         "name": bench, "dataset": evalscope_dataset(wc), "split": bench_cfg(wc).get("split", "test"),
                         "limit": bench_cfg(wc).get("limit", 0), "dataset_args": evalscope_args(wc),
                         "output": f"{stem}.evalscope.responses.jsonl", "work_dir": f"{stem}.evalscope",
                         "n": gen["n"], "temperature": gen["temperature"], "top_p": gen["top_p"],
                         "top_k": gen.get("top_k"), "max_tokens": gen["max_tokens"], "seed": gen["seed"],
                         "batch_size": gen["batch_problems"]})
    return jobs


def evalscope_bench_inputs(study):
    """The local benchmark files of a study's eval (a hub id is read by the job: no input)."""
    files = [bench_input(SimpleNamespace(study=study, bench=bench)) for bench in study_cfg(study)["eval"]["benchmarks"]]
    return [f for f in files if f]


for _study in PER_RUN_EVALSCOPE:
    _eval = study_cfg(_study)["eval"]

    rule:
        # One server start for all of a run's benchmarks x seeds through EvalScope (as
        # eval_generate_run_<study> for the native engine); the files are eval_evalscope's.
        name:
            "eval_evalscope_run_" + re.sub(r"\W", "_", _study)
        conda:
            "../envs/eval.yaml"
        container:
            stage_container("eval")
        wildcard_constraints:
            study=re.escape(_study),
        input:
            benchmarks=lambda wc: evalscope_bench_inputs(wc.study),
            model=lambda wc: checkpoint_inputs(wc.study, wc.run),
            code=code_inputs("eval-evalscope", "serve"),
        output:
            responses=[f"results/{{study}}/eval/{{run}}/{bench}/seed{seed}.evalscope.responses.jsonl"
                       for bench in _eval["benchmarks"] for seed in _eval["seeds"]],
            work_dirs=[directory(f"results/{{study}}/eval/{{run}}/{bench}/seed{seed}.evalscope")
                       for bench in _eval["benchmarks"] for seed in _eval["seeds"]],
        params:
            jobs=lambda wc: as_json(evalscope_run_jobs(wc.study, wc.run)),
            python=evalscope_python,
            model=lambda wc: checkpoint_location(wc.study, wc.run),
            server=lambda wc: server_command(wc.study, run_model_name(wc.study, wc.run), "eval_generate", "model"),
            placement=lambda wc: placement_arg(wc.study, "eval_generate", eval_servers(wc)),
        log:
            "logs/{study}/eval/{run}/evalscope.log",
        benchmark:
            "logs/{study}/eval/{run}/evalscope.benchmark.tsv"
        threads: stage_threads("eval_generate")
        resources:
            **stage_resources("eval_generate", gpu=lambda wc: eval_gpus(wc, eval_servers(wc))),
        shell:
            "{params.python:q} -m motab eval-evalscope --model {params.model:q} --jobs-json {params.jobs:q}"
            " --server-command {params.server:q} {params.placement}"
            " --server-log logs/{wildcards.study}/eval/{wildcards.run}/evalscope.server.log > {log} 2>&1"


rule eval_grade:
    conda:
        "../envs/eval.yaml"
    input:
        responses=responses_file,
        code=code_inputs("eval-grade"),
    output:
        "results/{study}/eval/{run}/{bench}/seed{seed}.json",
    params:
        provenance=lambda wc: as_json(
            {"run": {k: v for k, v in run_cfg(wc.study, wc.run).items() if k != "label"},
             "benchmark": bench_data_cfg(wc.bench),
             **({"model": {"revision": run_model_revision(wc)}} if run_model_revision(wc) else {}),
             "generation": generation_params(wc),
             "grading": grading_params(wc),
             **({"engine": eval_engine(wc)} if eval_engine(wc) != "native" else {}),
             **({"grade": grade_settings(wc)} if grade_settings(wc) else {})}
        ),
        grading=grading_params,
        grade=grade_args,
    log:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.grade.log",
    threads: stage_threads("eval_grade")
    resources:
        **stage_resources("eval_grade"),
    shell:
        "{MOTAB} eval-grade --responses {input.responses} --output {output} --run {wildcards.run}"
        " --benchmark {wildcards.bench} --seed {wildcards.seed} --processes 1{params.grade}"
        " --extraction {params.grading[extraction]} --equivalence {params.grading[equivalence]}"
        " --params-json {params.provenance:q} > {log} 2>&1"


def critic_cfg(wildcards):
    cfg = eval_cfg(wildcards).get("critic")
    if not cfg:
        raise ValueError(f"studies.{wildcards.study}.eval.critic: needed by a table with metric critic")
    return {"max_tokens": 16, "temperature": 0.0} | cfg


rule eval_critic:
    # The optional critic score: a judge model behind the same server client scores each response.
    conda:
        "../envs/eval.yaml"
    container:
        stage_container("eval")
    input:
        eval="results/{study}/eval/{run}/{bench}/seed{seed}.json",
        problems="results/{study}/benchmarks/{bench}.jsonl",
        judge=lambda wc: [model_location(wc.study, critic_cfg(wc)["model"])]
        if is_toy_model(critic_cfg(wc)["model"]) else [],
        code=code_inputs("eval-critic", "serve"),
    output:
        "results/{study}/eval/{run}/{bench}/seed{seed}.critic.json",
    params:
        critic=lambda wc: as_json(critic_cfg(wc)),
        cfg=critic_cfg,
        judge=lambda wc: model_location(wc.study, critic_cfg(wc)["model"]),
        server=lambda wc: server_command(wc.study, critic_cfg(wc)["model"], "eval_generate", "judge"),
        placement=lambda wc: placement_arg(wc.study, "eval_generate", [("judge", critic_cfg(wc)["model"])]),
    log:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.critic.log",
    benchmark:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.critic.benchmark.tsv"
    threads: stage_threads("eval_generate")
    resources:
        **stage_resources("eval_generate", gpu=lambda wc: eval_gpus(wc, [("judge", critic_cfg(wc)["model"])])),
    shell:
        "{MOTAB} eval-critic --eval {input.eval} --problems {input.problems} --model {params.judge:q}"
        " --output {output} --rubric {params.cfg[rubric]:q} --scale-min {params.cfg[scale][0]}"
        " --scale-max {params.cfg[scale][1]} --max-tokens {params.cfg[max_tokens]}"
        " --temperature {params.cfg[temperature]} --seed {wildcards.seed} --server-command {params.server:q}"
        " {params.placement}"
        " --server-log logs/{wildcards.study}/eval/{wildcards.run}/{wildcards.bench}/seed{wildcards.seed}.critic.server.log"
        " --params-json {params.critic:q} > {log} 2>&1"

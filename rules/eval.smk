# Evaluation in two rules: generation (GPU hours on a cluster) and grading (CPU seconds), so a
# change to answer extraction or metrics regrades without regenerating.


PER_FILE_EVAL = [s for s in config["studies"] if eval_group(s) == "file"]
# studies whose runs generate in one job each, per engine (native: eval_generate_run_<study>,
# evalscope: eval_evalscope_run_<study>)
PER_RUN_EVAL = [
    s for s in config["studies"] if eval_group(s) == "run" and study_cfg(s)["eval"].get("engine", "native") == "native"
]
PER_RUN_EVALSCOPE = [
    s
    for s in config["studies"]
    if eval_group(s) == "run" and study_cfg(s)["eval"].get("engine", "native") == "evalscope"
]


rule eval_generate:
    input:
        problems="results/{study}/benchmarks/{bench}.jsonl",
        model=lambda wc: checkpoint_inputs(wc.study, wc.run),
        code=code_inputs("eval-generate", "serve"),
    output:
        "results/{study}/eval/{run}/{bench}/seed{seed}.responses.jsonl",
    log:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.generate.log",
    benchmark:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.generate.benchmark.tsv"
    wildcard_constraints:
        study=_study_regex(PER_FILE_EVAL),
    conda:
        "../envs/eval.yaml"
    container:
        stage_container("eval")
    threads: stage_threads("eval_generate")
    resources:
        **stage_resources("eval_generate", gpu=lambda wc: eval_gpus(wc, eval_servers(wc))),
        server_startup_s=server_startup("eval_generate"),
    params:
        generation=lambda wc: as_json(generation_params(wc)),
        cfg=generation_params,
        top_k=lambda wc: generation_params(wc).get("top_k", -1),
        model=lambda wc: checkpoint_location(wc.study, wc.run),
        server=lambda wc: server_command(wc.study, run_model_name(wc.study, wc.run), "eval_generate", "model"),
        placement=lambda wc: placement_arg(wc.study, "eval_generate", eval_servers(wc)),
        prompt=prompt_args,
    shell:
        "motab eval-generate --model {params.model:q} --problems {input.problems} --output {output}"
        " --n {params.cfg[n]} --temperature {params.cfg[temperature]} --top-p {params.cfg[top_p]}"
        " --top-k {params.top_k} --max-tokens {params.cfg[max_tokens]} --seed {params.cfg[seed]}"
        " --batch-problems {params.cfg[batch_problems]} --server-command {params.server:q} --server-startup-timeout {resources.server_startup_s} {params.prompt}"
        " {params.placement}"
        " --server-log logs/{wildcards.study}/eval/{wildcards.run}/{wildcards.bench}/seed{wildcards.seed}.server.log"
        " > {log} 2>&1"


for _study in PER_RUN_EVAL:
    _eval = study_cfg(_study)["eval"]

    rule:
        # One server start for all of a run's benchmarks x seeds (the server is the slow part to
        # start: minutes for a 32B model under SGLang); grading stays one job per file (eval_grade).
        name:
            per_study_rule("eval_generate_run", _study)
        input:
            problems=[f"results/{{study}}/benchmarks/{bench}.jsonl" for bench in _eval["benchmarks"]],
            model=lambda wc: checkpoint_inputs(wc.study, wc.run),
            code=code_inputs("eval-generate", "serve"),
        output:
            [
                f"results/{{study}}/eval/{{run}}/{bench}/seed{seed}.responses.jsonl"
                for bench in _eval["benchmarks"]
                for seed in _eval["seeds"]
            ],
        log:
            "logs/{study}/eval/{run}/generate.log",
        benchmark:
            "logs/{study}/eval/{run}/generate.benchmark.tsv"
        wildcard_constraints:
            study=re.escape(_study),
        conda:
            "../envs/eval.yaml"
        container:
            stage_container("eval")
        threads: stage_threads("eval_generate")
        resources:
            **stage_resources("eval_generate", gpu=lambda wc: eval_gpus(wc, eval_servers(wc))),
            server_startup_s=server_startup("eval_generate"),
        params:
            jobs=lambda wc: as_json(run_generation_jobs(wc.study, wc.run)),
            model=lambda wc: checkpoint_location(wc.study, wc.run),
            server=lambda wc: server_command(wc.study, run_model_name(wc.study, wc.run), "eval_generate", "model"),
            placement=lambda wc: placement_arg(wc.study, "eval_generate", eval_servers(wc)),
            prompt=prompt_args,
        shell:
            "motab eval-generate --model {params.model:q} --jobs-json {params.jobs:q}"
            " --server-command {params.server:q} --server-startup-timeout {resources.server_startup_s} {params.placement} {params.prompt}"
            " --server-log logs/{wildcards.study}/eval/{wildcards.run}/generate.server.log > {log} 2>&1"


rule eval_evalscope:
    input:
        benchmark=bench_input,
        model=lambda wc: checkpoint_inputs(wc.study, wc.run),
        code=code_inputs("eval-evalscope", "serve"),
    output:
        responses="results/{study}/eval/{run}/{bench}/seed{seed}.evalscope.responses.jsonl",
        work_dir=directory("results/{study}/eval/{run}/{bench}/seed{seed}.evalscope"),
    log:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.evalscope.log",
    benchmark:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.evalscope.benchmark.tsv"
    wildcard_constraints:
        study=_study_regex(PER_FILE_EVAL),
    # EvalScope's TaskConfig against the server's OpenAI endpoint; its reviews become the native
    # responses file (task_config.json, reviews and EvalScope's own report stay in the work dir).
    # Studies with eval.group: file (one job per file); group: run is eval_evalscope_run_<study>.
    conda:
        "../envs/eval.yaml"
    container:
        stage_container("eval")
    threads: stage_threads("eval_generate")
    resources:
        **stage_resources("eval_generate", gpu=lambda wc: eval_gpus(wc, eval_servers(wc))),
        server_startup_s=server_startup("eval_generate"),
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
    shell:
        "{params.python:q} -m motab eval-evalscope --model {params.model:q} --benchmark-file {params.location:q}"
        " --format {params.format:q} --name {wildcards.bench} --dataset {params.dataset:q} --split {params.split:q}"
        " --dataset-args {params.dataset_args:q}"
        " --output {output.responses} --work-dir {output.work_dir} --limit {params.limit}"
        " --n {params.cfg[n]} --temperature {params.cfg[temperature]} --top-p {params.cfg[top_p]}"
        " --max-tokens {params.cfg[max_tokens]} --seed {params.cfg[seed]} --batch-size {params.cfg[batch_problems]}"
        "{params.top_k}"
        " --server-command {params.server:q} --server-startup-timeout {resources.server_startup_s} {params.placement}"
        " --server-log logs/{wildcards.study}/eval/{wildcards.run}/{wildcards.bench}/seed{wildcards.seed}.server.log"
        " > {log} 2>&1"


for _study in PER_RUN_EVALSCOPE:
    _eval = study_cfg(_study)["eval"]

    rule:
        # One server start for all of a run's benchmarks x seeds through EvalScope (as
        # eval_generate_run_<study> for the native engine); the files are eval_evalscope's.
        name:
            per_study_rule("eval_evalscope_run", _study)
        input:
            benchmarks=lambda wc: evalscope_bench_inputs(wc.study),
            model=lambda wc: checkpoint_inputs(wc.study, wc.run),
            code=code_inputs("eval-evalscope", "serve"),
        output:
            responses=[
                f"results/{{study}}/eval/{{run}}/{bench}/seed{seed}.evalscope.responses.jsonl"
                for bench in _eval["benchmarks"]
                for seed in _eval["seeds"]
            ],
            work_dirs=[
                directory(f"results/{{study}}/eval/{{run}}/{bench}/seed{seed}.evalscope")
                for bench in _eval["benchmarks"]
                for seed in _eval["seeds"]
            ],
        log:
            "logs/{study}/eval/{run}/evalscope.log",
        benchmark:
            "logs/{study}/eval/{run}/evalscope.benchmark.tsv"
        wildcard_constraints:
            study=re.escape(_study),
        conda:
            "../envs/eval.yaml"
        container:
            stage_container("eval")
        threads: stage_threads("eval_generate")
        resources:
            **stage_resources("eval_generate", gpu=lambda wc: eval_gpus(wc, eval_servers(wc))),
            server_startup_s=server_startup("eval_generate"),
        params:
            jobs=lambda wc: as_json(evalscope_run_jobs(wc.study, wc.run)),
            python=evalscope_python,
            model=lambda wc: checkpoint_location(wc.study, wc.run),
            server=lambda wc: server_command(wc.study, run_model_name(wc.study, wc.run), "eval_generate", "model"),
            placement=lambda wc: placement_arg(wc.study, "eval_generate", eval_servers(wc)),
        shell:
            "{params.python:q} -m motab eval-evalscope --model {params.model:q} --jobs-json {params.jobs:q}"
            " --server-command {params.server:q} --server-startup-timeout {resources.server_startup_s} {params.placement}"
            " --server-log logs/{wildcards.study}/eval/{wildcards.run}/evalscope.server.log > {log} 2>&1"


rule eval_grade:
    input:
        responses=responses_file,
        code=code_inputs("eval-grade"),
    output:
        "results/{study}/eval/{run}/{bench}/seed{seed}.json",
    log:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.grade.log",
    conda:
        "../envs/eval.yaml"
    threads: stage_threads("eval_grade")
    resources:
        **stage_resources("eval_grade"),
    params:
        provenance=lambda wc: as_json(
            {
                "run": {k: v for k, v in run_cfg(wc.study, wc.run).items() if k != "label"},
                "benchmark": bench_data_cfg(wc.bench),
                **({"model": {"revision": run_model_revision(wc)}} if run_model_revision(wc) else {}),
                "generation": generation_params(wc),
                "grading": grading_params(wc),
                **({"engine": eval_engine(wc)} if eval_engine(wc) != "native" else {}),
                **({"grade": grade_settings(wc)} if grade_settings(wc) else {}),
            }
        ),
        grading=grading_params,
        grade=grade_args,
    shell:
        "motab eval-grade --responses {input.responses} --output {output} --run {wildcards.run}"
        " --benchmark {wildcards.bench} --seed {wildcards.seed} --processes 1{params.grade}"
        " --extraction {params.grading[extraction]} --equivalence {params.grading[equivalence]}"
        " --params-json {params.provenance:q} > {log} 2>&1"


rule eval_critic:
    input:
        eval="results/{study}/eval/{run}/{bench}/seed{seed}.json",
        problems="results/{study}/benchmarks/{bench}.jsonl",
        judge=lambda wc: model_inputs(wc.study, critic_cfg(wc)["model"]),
        code=code_inputs("eval-critic", "serve"),
    output:
        "results/{study}/eval/{run}/{bench}/seed{seed}.critic.json",
    log:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.critic.log",
    benchmark:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.critic.benchmark.tsv"
    # The optional critic score: a judge model behind the same server client scores each response.
    conda:
        "../envs/eval.yaml"
    container:
        stage_container("eval")
    threads: stage_threads("eval_generate")
    resources:
        **stage_resources("eval_generate", gpu=lambda wc: eval_gpus(wc, [("judge", critic_cfg(wc)["model"])])),
        server_startup_s=server_startup("eval_generate"),
    params:
        critic=lambda wc: as_json(critic_cfg(wc)),
        cfg=critic_cfg,
        judge=lambda wc: model_location(wc.study, critic_cfg(wc)["model"]),
        server=lambda wc: server_command(wc.study, critic_cfg(wc)["model"], "eval_generate", "judge"),
        placement=lambda wc: placement_arg(wc.study, "eval_generate", [("judge", critic_cfg(wc)["model"])]),
    shell:
        "motab eval-critic --eval {input.eval} --problems {input.problems} --model {params.judge:q}"
        " --output {output} --rubric {params.cfg[rubric]:q} --scale-min {params.cfg[scale][0]}"
        " --scale-max {params.cfg[scale][1]} --max-tokens {params.cfg[max_tokens]}"
        " --temperature {params.cfg[temperature]} --seed {wildcards.seed} --server-command {params.server:q} --server-startup-timeout {resources.server_startup_s}"
        " {params.placement}"
        " --server-log logs/{wildcards.study}/eval/{wildcards.run}/{wildcards.bench}/seed{wildcards.seed}.critic.server.log"
        " --params-json {params.critic:q} > {log} 2>&1"

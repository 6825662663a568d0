# Evaluation in two rules: generation (GPU hours on a cluster) and grading (CPU seconds), so a
# change to answer extraction or metrics regrades without regenerating.


def eval_cfg(wildcards):
    return study_cfg(wildcards.study)["eval"]


def generation_params(wildcards):
    cfg = eval_cfg(wildcards)
    keys = ("n", "temperature", "top_p", "max_tokens", "batch_problems")
    return {key: cfg[key] for key in keys} | {"seed": int(wildcards.seed)}


rule eval_generate:
    input:
        problems="results/{study}/benchmarks/{bench}.jsonl",
        model=lambda wc: checkpoint_inputs(wc.study, wc.run),
        code=code_inputs("eval-generate", "serve"),
    output:
        "results/{study}/eval/{run}/{bench}/seed{seed}.responses.jsonl",
    params:
        generation=lambda wc: as_json(generation_params(wc)),
        cfg=generation_params,
        model=lambda wc: checkpoint_location(wc.study, wc.run),
        server=lambda wc: server_command(wc.study, run_model_name(wc.study, wc.run)),
    log:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.generate.log",
    threads: 1
    resources:
        **stage_resources("eval_generate"),
    shell:
        "{MOTAB} eval-generate --model {params.model} --problems {input.problems} --output {output}"
        " --n {params.cfg[n]} --temperature {params.cfg[temperature]} --top-p {params.cfg[top_p]}"
        " --max-tokens {params.cfg[max_tokens]} --seed {params.cfg[seed]}"
        " --batch-problems {params.cfg[batch_problems]} --server-command {params.server:q}"
        " --server-log logs/{wildcards.study}/eval/{wildcards.run}/{wildcards.bench}/seed{wildcards.seed}.server.log"
        " > {log} 2>&1"


rule eval_grade:
    input:
        responses="results/{study}/eval/{run}/{bench}/seed{seed}.responses.jsonl",
        code=code_inputs("eval-grade"),
    output:
        "results/{study}/eval/{run}/{bench}/seed{seed}.json",
    params:
        provenance=lambda wc: as_json(
            {"run": {k: v for k, v in run_cfg(wc.study, wc.run).items() if k != "label"},
             "benchmark": bench_data_cfg(wc.bench),
             "generation": generation_params(wc)}
        ),
    log:
        "logs/{study}/eval/{run}/{bench}/seed{seed}.grade.log",
    threads: 1
    resources:
        **stage_resources("eval_grade"),
    shell:
        "{MOTAB} eval-grade --responses {input.responses} --output {output} --run {wildcards.run}"
        " --benchmark {wildcards.bench} --seed {wildcards.seed} --processes 1"
        " --params-json {params.provenance:q} > {log} 2>&1"

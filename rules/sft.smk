# SFT with LLaMA-Factory: the job writes the tool's YAML into the checkpoint folder (so the
# stage can be rerun by hand with `llamafactory-cli train`) and renames the folder when done.


rule sft:
    input:
        data=lambda wc: f"results/{wc.study}/sft_data/{sft_method(wc)}/train.jsonl",
        info=lambda wc: f"results/{wc.study}/sft_data/{sft_method(wc)}/dataset_info.json",
        start=lambda wc: start_inputs(wc.study, wc.run),
        code=code_inputs("sft"),
    output:
        directory("results/{study}/ckpt/sft/{run}"),
    log:
        "logs/{study}/sft/{run}.log",
    benchmark:
        "logs/{study}/sft/{run}.benchmark.tsv"
    conda:
        "../envs/sft.yaml"
    container:
        stage_container("sft")
    threads: stage_threads("sft")
    resources:
        **stage_resources("sft"),
        nodes=sft_nodes,
    params:
        sft=lambda wc: as_json(sft_params(wc)),
        start=lambda wc: start_location(wc.study, wc.run),
        method=sft_method,
        launcher=sft_launcher,
    shell:
        # exec: the trainer is Snakemake's own child, so SLURM's SIGTERM reaches it with no shell between
        # that would die first (docs/resume.md)
        "exec {params.launcher}motab sft --model {params.start:q} --dataset-dir results/{wildcards.study}/sft_data/{params.method}"
        " --dataset {params.method} --output {output} --params-json {params.sft:q} > {log} 2>&1"

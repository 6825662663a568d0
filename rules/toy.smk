# The toy study's own inputs, built from config so no download is needed: a generated
# arithmetic problem set, a BPE tokenizer trained on it, and Qwen3 teacher/student models.


TOY_PROBLEMS = (
    "motab toy-problems --num-train {params.cfg[num_train]} --num-test {params.cfg[num_test]}"
    " --num-ops {params.cfg[num_ops]} --min-operand {params.cfg[min_operand]}"
    " --max-operand {params.cfg[max_operand]} --seed {params.cfg[seed]}"
    " --train-output {output.train} --test-output {output.test} > {log} 2>&1"
)


rule toy_problems:
    input:
        code=code_inputs("toy-problems"),
    output:
        train="results/{study}/raw/train.jsonl",
        test="results/{study}/raw/test.jsonl",
    log:
        "logs/{study}/toy_problems.log",
    conda:
        "../envs/synth.yaml"
    threads: stage_threads("toy")
    resources:
        **stage_resources("toy"),
    params:
        data=lambda wc: as_json(toy_dataset_cfg(wc.study)),
        cfg=lambda wc: toy_dataset_cfg(wc.study),
    shell:
        TOY_PROBLEMS


rule toy_dataset:
    input:
        code=code_inputs("toy-problems"),
    output:
        train="results/{study}/raw/{dataset}/train.jsonl",
        test="results/{study}/raw/{dataset}/test.jsonl",
    log:
        "logs/{study}/toy_problems/{dataset}.log",
    wildcard_constraints:
        dataset="|".join(re.escape(d) for d in sorted(config["datasets"]) if config["datasets"][d]["source"] == "toy"),
    # another generated dataset of the study (KD prompts from their own dataset)
    conda:
        "../envs/synth.yaml"
    threads: stage_threads("toy")
    resources:
        **stage_resources("toy"),
    params:
        data=lambda wc: as_json(config["datasets"][wc.dataset]),
        cfg=lambda wc: config["datasets"][wc.dataset],
    shell:
        TOY_PROBLEMS


rule toy_tokenizer:
    input:
        problems="results/{study}/data/problems.jsonl",
        code=code_inputs("toy-tokenizer"),
    output:
        directory("results/{study}/models/tokenizer"),
    log:
        "logs/{study}/toy_tokenizer.log",
    conda:
        "../envs/synth.yaml"
    threads: stage_threads("toy")
    resources:
        **stage_resources("toy"),
    params:
        vocab_size=512,
    shell:
        "motab toy-tokenizer --problems {input.problems} --vocab-size {params.vocab_size} --output {output} > {log} 2>&1"


rule toy_model:
    input:
        problems="results/{study}/data/problems.jsonl",
        tokenizer="results/{study}/models/tokenizer",
        code=code_inputs("toy-pretrain"),
    output:
        directory("results/{study}/models/{model}"),
    log:
        "logs/{study}/toy_model/{model}.log",
    benchmark:
        "logs/{study}/toy_model/{model}.benchmark.tsv"
    wildcard_constraints:
        model="|".join(sorted(m for m in config["models"] if config["models"][m]["source"] == "toy")),
    conda:
        "../envs/synth.yaml"
    threads: stage_threads("toy_model")
    resources:
        **stage_resources("toy_model"),
    params:
        model=lambda wc: as_json(toy_model_cfg(wc)),
        shape=lambda wc: toy_model_cfg(wc)["shape"],
        train=lambda wc: toy_model_cfg(wc)["pretrain"],
    shell:
        "motab toy-pretrain --problems {input.problems} --tokenizer {input.tokenizer} --output {output}"
        " --hidden-size {params.shape[hidden_size]} --num-layers {params.shape[num_layers]}"
        " --num-heads {params.shape[num_heads]} --num-kv-heads {params.shape[num_kv_heads]}"
        " --intermediate-size {params.shape[intermediate_size]} --steps {params.train[steps]}"
        " --batch-size {params.train[batch_size]} --lr {params.train[lr]}"
        " --warmup-steps {params.train[warmup_steps]} --seed {params.train[seed]} --threads {threads}"
        " --log-csv logs/{wildcards.study}/toy_model/{wildcards.model}.train.csv > {log} 2>&1"

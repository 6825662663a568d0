# Trajectory synthesis over HTTP: the job starts the servers it needs (teacher, and the student
# for draft-and-verify methods) and always stops them. Then the teacher-CoT filter.

def synth_cfg(wildcards):
    return study_cfg(wildcards.study)["synth"][wildcards.method]


def synth_params(wildcards):
    """The entry's algorithm parameters (without `student`, which goes to --student)."""
    return {k: v for k, v in synth_cfg(wildcards).items() if k != "student"}


def synth_student(wildcards):
    return STUDIES[wildcards.study].synth_student(wildcards.method)


def synth_models(wildcards):
    """Config names of the models a synthesis method talks to (the teacher, and a drafting student)."""
    return STUDIES[wildcards.study].synth_models(wildcards.method)


def synth_servers(wildcards):
    """[(role, model)] of the servers a synthesis job starts, in GPU order (teacher first)."""
    return list(zip(("teacher", "student"), synth_models(wildcards)))   # the entry's own drafting student


def synth_student_args(wildcards):
    if plan.synth_algorithm(wildcards.method) not in plan.STUDENT_METHODS:
        return ""
    student = synth_student(wildcards)
    log = f"logs/{wildcards.study}/synth/{wildcards.method}.student.server.log"
    command = server_command(wildcards.study, student, "synth", "student")
    return (f"--student {shlex.quote(model_location(wildcards.study, student))} --student-log {log}"
            f" --student-server-command {shlex.quote(command)}")


rule synth:
    conda:
        "../envs/synth.yaml"
    container:
        stage_container("synth")
    input:
        problems="results/{study}/data/problems.jsonl",
        models=lambda wc: [model_location(wc.study, m) for m in synth_models(wc) if is_toy_model(m)],
        code=code_inputs("synth", "serve"),
    output:
        rows="results/{study}/synth/{method}.jsonl",
        stats="results/{study}/synth/{method}.stats.json",
    wildcard_constraints:
        method=r"[a-z0-9_]+",
    params:
        synth=lambda wc: as_json(synth_params(wc)),
        algorithm=lambda wc: plan.synth_algorithm(wc.method),
        teacher=lambda wc: model_location(wc.study, study_cfg(wc.study)["teacher"]),
        student=synth_student_args,
        server=lambda wc: server_command(wc.study, study_cfg(wc.study)["teacher"], "synth", "teacher"),
        placement=lambda wc: placement_arg(wc.study, "synth", synth_servers(wc)),
        max_in_flight=lambda wc: study_cfg(wc.study).get("max_in_flight", 8),
    log:
        "logs/{study}/synth/{method}.log",
    benchmark:
        "logs/{study}/synth/{method}.benchmark.tsv"
    threads: stage_threads("synth")
    resources:
        **stage_resources("synth", gpu=lambda wc: stage_placement(wc.study, "synth", synth_servers(wc))[1]),
    shell:
        "{MOTAB} synth --method {params.algorithm} --problems {input.problems} --teacher {params.teacher:q}"
        " {params.student} --output {output.rows} --stats {output.stats} --params-json {params.synth:q}"
        " --server-command {params.server:q} {params.placement} --max-in-flight {params.max_in_flight}"
        " --server-log logs/{wildcards.study}/synth/{wildcards.method}.server.log > {log} 2>&1"


def filter_args(wildcards):
    cfg = study_cfg(wildcards.study)["filter"]
    banned = " ".join(f"--banned {shlex.quote(phrase)}" for phrase in cfg.get("banned", []))
    return (f"{banned} --max-words {cfg['max_words']} --ngram {cfg['ngram']}"
            f" --max-ngram-repeats {cfg['max_ngram_repeats']} --mode {cfg.get('mode', 'ours')}"
            + (" --repetition-check" if cfg.get("repetition_check") else ""))


rule synth_filter:
    conda:
        "../envs/synth.yaml"
    input:
        rows="results/{study}/synth/{method}.jsonl",
        gold="results/{study}/data/problems.jsonl",
        code=code_inputs("synth-filter"),
    output:
        rows="results/{study}/synth/{method}.filtered.jsonl",
        stats="results/{study}/synth/{method}.filtered.stats.json",
        counts="results/{study}/synth/{method}.filter_counts.json",
    wildcard_constraints:
        method=r"[a-z0-9_]+",
    params:
        filter=lambda wc: as_json(study_cfg(wc.study)["filter"]),
        args=filter_args,
    log:
        "logs/{study}/synth/{method}.filter.log",
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    shell:
        "{MOTAB} synth-filter --input {input.rows} --gold {input.gold} --output {output.rows}"
        " --stats {output.stats} --counts {output.counts} {params.args} --params-json {params.filter:q} > {log} 2>&1"

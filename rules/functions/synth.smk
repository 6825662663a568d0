# The input functions and parameters of rules/synth.smk (Snakemake's lint: functions apart from rules).


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
    return list(zip(("teacher", "student"), synth_models(wildcards)))  # the entry's own drafting student


def synth_student_args(wildcards):
    if plan.synth_algorithm(wildcards.method) not in plan.STUDENT_METHODS:
        return ""
    student = synth_student(wildcards)
    log = f"logs/{wildcards.study}/synth/{wildcards.method}.student.server.log"
    command = server_command(wildcards.study, student, "synth", "student")
    return (
        f"--student {shlex.quote(model_location(wildcards.study, student))} --student-log {log}"
        f" --student-server-command {shlex.quote(command)}"
    )


def filter_args(wildcards):
    cfg = study_cfg(wildcards.study)["filter"]
    banned = " ".join(f"--banned {shlex.quote(phrase)}" for phrase in cfg.get("banned", []))
    return (
        f"{banned} --max-words {cfg['max_words']} --ngram {cfg['ngram']}"
        f" --max-ngram-repeats {cfg['max_ngram_repeats']} --mode {cfg.get('mode', 'ours')}"
        + (" --repetition-check" if cfg.get("repetition_check") else "")
    )


def card_student(wildcards):
    """Config name of the SFT student a dataset is for (the entry's own student, else the study's)."""
    return synth_student(SimpleNamespace(study=wildcards.study, method=wildcards.dataset.split(".")[0]))


def card_tokenizer_inputs(wildcards):
    student = card_student(wildcards)
    return [model_location(wildcards.study, student)] if is_toy_model(student) else []


def card_budget_args(wildcards):
    budgets = plan.card_budgets(STUDIES[wildcards.study])
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in budgets.items() if value)

"""Staleness, exactly: after a complete toy study, changing one config value (or one source file of
the package) makes `snakemake -n` schedule exactly the jobs that value feeds and what follows them.

The expectation is written here, not read back from Snakemake: `toy_dag` models the toy study's DAG
from config (which runs the tables need, what each job reads), and FEEDS says which jobs each config
value feeds directly. The expected plan is those jobs plus everything downstream in the model.
Runs are derived from config (table rows, `from`, `sft`, `kd`), so studies with more runs keep working.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import time
from collections import defaultdict

import pytest
import yaml
from dryrun import REPO, copy_workflow, make_up_to_date, plan_many

from motab.plan import STUDENT_METHODS, workflow_config
from motab.plan.sweeps import expand_study, synth_algorithm

STUDY = "toy"


def node(rule: str, **wildcards: str) -> tuple:
    return (rule, tuple(sorted((k, str(v)) for k, v in wildcards.items())))


# --- the model of the toy study's DAG ------------------------------------------------------------


class ToyDag:
    """Jobs of the toy study and their dependencies, derived from config by the rules' contract."""

    def __init__(self, config: dict):
        self.config = config
        self.raw = config["studies"][STUDY]
        self.study = expand_study(STUDY, self.raw)  # sweeps and eval_epochs as the workflow plans them
        self.deps: dict[tuple, set[tuple]] = defaultdict(set)
        s = {"study": STUDY}
        self.problems, self.prepare, self.tokenizer = (
            node("toy_problems", **s),
            node("prepare", **s),
            node("toy_tokenizer", **s),
        )
        self.add(self.prepare, self.problems)
        self.add(self.tokenizer, self.prepare)
        tables = [node("table", table=t, **s) for t in sorted(self.study["tables"])]
        self.add(node("all"), *tables)
        for table in sorted(self.study["tables"]):
            spec = self.study["tables"][table]
            for run in spec["rows"]:
                for bench in self.study["eval"]["benchmarks"]:
                    for seed in self.study["eval"]["seeds"]:
                        self.add(node("table", table=table, **s), self.grade(run, bench, seed))
                method = self.synth_method_of(run)
                if method:
                    self.add(node("table", table=table, **s), self.synth_output(method))
                    self.add(node("all"), self.card(method))
            # the report's bar chart reads the table's spec and the same eval files
            chart = node("table_chart", table=table, **s)
            self.add(chart, node("table", table=table, **s), *self.deps[node("table", table=table, **s)])
            self.add(node("all"), chart)
        # the report's training curves read every trained checkpoint of the tables' runs
        trained = sorted(
            {
                self.study["runs"][run].get("epoch_of", run)
                for spec in self.study["tables"].values()
                for run in spec["rows"]
                if "model" not in self.study["runs"][run]
            }
        )
        self.add(node("training_curves", **s), *[job for run in trained for job in self.checkpoint(run)])
        self.add(node("all"), node("training_curves", **s))
        # the cost table reads the benchmark files of every job: it comes after the tables and figures
        cost = node("cost_table", **s)
        self.add(
            cost,
            *tables,
            *[node("table_chart", table=t, **s) for t in sorted(self.study["tables"])],
            node("training_curves", **s),
        )
        self.add(node("all"), cost)

    def add(self, job: tuple, *deps: tuple) -> None:
        self.deps[job].update(deps)
        for dep in deps:
            self.deps.setdefault(dep, set())

    def model(self, name: str) -> list[tuple]:
        if self.config["models"][name]["source"] != "toy":
            return []
        job = node("toy_model", model=name, study=STUDY)
        self.add(job, self.prepare, self.tokenizer)
        return [job]

    def synth_output(self, method: str) -> tuple:
        base = method.removesuffix(".filtered")
        synth = node("synth", method=base, study=STUDY)
        drafter = self.study["synth"][base].get("student", self.study["student"])
        students = [drafter] if synth_algorithm(base) in STUDENT_METHODS else []  # drafting methods (motab.plan)
        self.add(synth, self.prepare, *[m for name in [self.study["teacher"], *students] for m in self.model(name)])
        if method.endswith(".filtered"):
            job = node("synth_filter", method=base, study=STUDY)
            self.add(job, synth, self.prepare)
            return job
        return synth

    def card(self, method: str) -> tuple:
        """The data card of a synthesized dataset: its rows, the gold answers and the SFT student's tokenizer."""
        job = node("data_card", dataset=method, study=STUDY)
        student = self.study["synth"][method.removesuffix(".filtered")].get("student", self.study["student"])
        self.add(job, self.synth_output(method), self.prepare, *self.model(student))
        return job

    def synth_method_of(self, run: str) -> str | None:
        spec = self.study["runs"][run]
        if "sft" in spec:
            return spec["sft"]
        if "kd" in spec and spec.get("from") in self.study["runs"]:
            return self.synth_method_of(spec["from"])
        return None

    def start(self, run: str) -> list[tuple]:
        source = self.study["runs"][run].get("from", self.study["student"])
        return self.checkpoint(source) if source in self.study["runs"] else self.model(source)

    def checkpoint(self, run: str) -> list[tuple]:
        spec = self.study["runs"][run]
        if "epoch" in spec:  # an eval_epochs run reads its SFT run's checkpoint folder
            return self.checkpoint(spec["epoch_of"])
        if "model" in spec:
            return self.model(spec["model"])
        if "sft" in spec:
            job = node("sft", run=run, study=STUDY)
            data = node("reorganize", method=spec["sft"], study=STUDY)
            self.add(data, self.synth_output(spec["sft"]))
            self.add(job, data, *self.start(run))
            return [job]
        job = node("kd", run=run, study=STUDY)
        for teacher, dataset in self.kd_sources(run):
            self.add(job, self.kd_prompts(dataset), *([] if teacher == "self" else self.model(teacher)))
        self.add(job, *self.start(run))
        return [job]

    def kd_sources(self, run: str) -> list[tuple[str, str]]:
        """(teacher, prompt dataset) of each teacher of a KD run: `teachers`, else the run's (or the study's)
        teacher with the kd block's `prompts` dataset (or the train data)."""
        spec = self.study["runs"][run]
        cfg = self.study["kd"][spec["kd"]]
        if "teachers" in cfg:
            return [(t["model"], t["prompts"]) for t in cfg["teachers"]]
        return [(spec.get("teacher", self.study["teacher"]), cfg.get("prompts", self.study["train_data"]))]

    def kd_prompts(self, dataset: str) -> tuple:
        """kd_prompts of a dataset: from the train data's problems, or from the dataset's own preparation."""
        job = node("kd_prompts", dataset=dataset, study=STUDY)
        if dataset == self.study["train_data"]:
            self.add(job, self.prepare)
            return job
        prepare = node("prepare_dataset", dataset=dataset, study=STUDY)
        if self.config["datasets"][dataset]["source"] == "toy":
            raw = node("toy_dataset", dataset=dataset, study=STUDY)
            self.add(raw)
            self.add(prepare, raw)
        else:
            self.add(prepare)
        self.add(job, prepare)
        return job

    def grade(self, run: str, bench: str, seed: int) -> tuple:
        wildcards = dict(run=run, bench=bench, seed=seed, study=STUDY)
        benchmark = node("benchmark", bench=bench, study=STUDY)
        if self.config["benchmarks"][bench]["source"] == "toy":
            self.add(benchmark, self.problems)
        else:
            self.add(benchmark)
        generate = node("eval_generate", **wildcards)
        self.add(generate, benchmark, *self.checkpoint(run))
        self.add(node("eval_grade", **wildcards), generate)
        return node("eval_grade", **wildcards)

    def jobs(self, rule: str, **wildcards: str) -> set[tuple]:
        return {
            job
            for job in self.deps
            if job[0] == rule and all(dict(job[1]).get(k) == str(v) for k, v in wildcards.items())
        }

    def downstream(self, roots: set[tuple]) -> set[tuple]:
        users = defaultdict(set)
        for job, deps in self.deps.items():
            for dep in deps:
                users[dep].add(job)
        found, pending = set(), [r for r in roots if r in self.deps]
        while pending:
            job = pending.pop()
            if job not in found:
                found.add(job)
                pending += users[job]
        return found


# --- which jobs each config value feeds directly ---------------------------------------------------
# (pattern over the dotted key, jobs it feeds). First match wins; `*` matches one key.


def runs_with(study: dict, key: str, value: str | None = None) -> list[str]:
    return [r for r, spec in study["runs"].items() if key in spec and (value is None or spec[key] == value)]


ORIGINAL = expand_study(STUDY, workflow_config(REPO)["studies"][STUDY])


def changed_synth(dag: ToyDag, key: tuple) -> set[tuple]:
    """Synthesis jobs of entry key[3] (or its sweep's entries) whose expanded parameters changed."""
    return set().union(
        set(),
        *[
            dag.jobs("synth", method=name)
            for name, params in dag.study["synth"].items()
            if (name == key[3] or name.startswith(key[3] + "_")) and ORIGINAL["synth"].get(name) != params
        ],
    )


def new_epoch_evals(dag: ToyDag, key: tuple) -> set[tuple]:
    """Eval jobs of the epoch runs that a changed eval_epochs adds (the others keep their files)."""
    return {
        job
        for job in dag.jobs("eval_generate")
        if dag.study["runs"][dict(job[1])["run"]].get("epoch_of") == key[3]
        and dict(job[1])["run"] not in ORIGINAL["runs"]
    }


def table_rows_of(dag: ToyDag, run: str) -> set[str]:
    """A run's rows in the expanded tables: itself, its sweep variants or its epoch runs."""
    return {
        name
        for name, spec in dag.study["runs"].items()
        if name == run or spec.get("epoch_of") == run or (name.startswith(run + "_") and name not in dag.raw["runs"])
    }


FEEDS = [
    # Values of other studies, other models and datasets feed nothing of the toy study; nor do
    # resources (where a job runs, not what it computes) or the study selection's other entries.
    # except a GPU count: the jobs that start servers get their GPU placement as a param (a known gap:
    # where a job runs then reruns it), and the cost table the GPUs each job asks for
    (
        "studies.toy.resources.*.gpus",
        lambda dag, key: (
            dag.jobs("cost_table")
            | set().union(
                set(),
                *[
                    dag.jobs(stage)
                    for stage in {
                        "default": ("synth", "eval_generate"),
                        "synth": ("synth",),
                        "eval_generate": ("eval_generate",),
                    }.get(key[3], ())
                ],
            )
        ),
    ),
    ("studies.toy.resources.**", lambda dag, key: set()),
    (
        "servers.*",
        lambda dag, key: dag.jobs("synth") | dag.jobs("eval_generate") if key[1] == dag.study["server"] else set(),
    ),
    ("models.*.shape.*", lambda dag, key: dag.jobs("toy_model", model=key[1])),
    ("models.*.pretrain.*", lambda dag, key: dag.jobs("toy_model", model=key[1])),
    ("datasets.toy.*", lambda dag, key: {dag.problems}),
    # another dataset of the study (KD prompts): its generation (toy) or preparation
    (
        "datasets.*.*",
        lambda dag, key: (
            dag.jobs("toy_dataset", dataset=key[1])
            if dag.config["datasets"][key[1]]["source"] == "toy"
            else dag.jobs("prepare_dataset", dataset=key[1])
        ),
    ),
    ("benchmarks.*.label", lambda dag, key: dag.jobs("table") if key[1] in dag.study["eval"]["benchmarks"] else set()),
    ("studies.toy.synth.*.*", changed_synth),
    ("studies.toy.filter.*", lambda dag, key: dag.jobs("synth_filter")),
    # the two budgets a data card measures the rows against
    ("studies.toy.sft.cutoff_len", lambda dag, key: dag.jobs("sft") | dag.jobs("data_card")),
    ("studies.toy.sft.*", lambda dag, key: dag.jobs("sft")),
    (
        "studies.toy.kd.*.*",
        lambda dag, key: set().union(*[dag.jobs("kd", run=r) for r in runs_with(dag.study, "kd", key[3])]),
    ),
    ("studies.toy.eval.seeds", lambda dag, key: dag.jobs("eval_generate", seed=max(dag.study["eval"]["seeds"]))),
    ("studies.toy.eval.max_tokens", lambda dag, key: dag.jobs("eval_generate") | dag.jobs("data_card")),
    ("studies.toy.eval.*", lambda dag, key: dag.jobs("eval_generate")),
    # a new epoch adds its eval jobs only (the SFT run, the other epochs' evals stay)
    ("studies.toy.runs.*.eval_epochs", new_epoch_evals),
    (
        "studies.toy.runs.*.label",
        lambda dag, key: (
            {
                node("table", study=STUDY, table=t)
                for t, spec in dag.study["tables"].items()
                if table_rows_of(dag, key[3]) & set(spec["rows"])
            }
            | (dag.jobs("training_curves") if "model" not in dag.raw["runs"][key[3]] else set())
        ),
    ),
    ("studies.toy.tables.*.**", lambda dag, key: dag.jobs("table", table=key[3])),
]
# Values that name other config entries change the DAG's shape, not only what is stale; changing
# them is a different study (test_dag and the end-to-end test cover the shapes that exist).
REFERENCES = [
    "select",
    "models.*.source",
    "datasets.*.source",
    "benchmarks.*.source",
    "benchmarks.*.dataset",
    "studies.toy.teacher",
    "studies.toy.student",
    "studies.toy.train_data",
    "studies.toy.server",
    "studies.toy.runs.*.model",
    "studies.toy.runs.*.sft",
    "studies.toy.runs.*.kd",
    "studies.toy.runs.*.from",
    "studies.toy.runs.*.teacher",
    "studies.toy.eval.benchmarks",
    "studies.toy.kd.*.prompts",
    "studies.toy.kd.*.teachers",  # datasets and models by name
    "studies.toy.tables.*.rows",
    # the engine picks another trainer (KDFlow) with its own schema: a different study too
    "studies.toy.kd.*.engine",
    "studies.toy.eval.engine",
    # how eval generation is grouped into jobs (one per file or one per run) renames the rule
    "studies.toy.eval.group",
    # per-epoch checkpoints are what eval_epochs reads: another strategy is another study
    "studies.toy.sft.save_strategy",
]
EXTRACTION_ALTERNATIVES = {"boxed": "strict", "strict": "boxed", "flexible": "strict", "first_hash": "strict"}
ENUM_ALTERNATIVES = {
    "rule": {"nucleus": "topk", "topk": "nucleus"},
    "finetuning_type": {"full": "lora", "lora": "full"},
    "flash_attn": {"fa2": "sdpa", "sdpa": "fa2"},
    "loss": {"rkl_onpolicy": "rkl", "rkl": "fkl", "fkl": "rkl", "jsd": "rkl", "opsd": "pwopsd", "pwopsd": "opsd"},
    "compat": {"released": "paper", "paper": "released"},
    "lr_schedule": {"constant": "linear", "linear": "constant"},
    "loss_average": {"step": "micro_batch", "micro_batch": "step"},
    "prompt_style": {"opsd": "pwopsd", "pwopsd": "opsd"},
    "dtype": {"float32": "bfloat16", "bfloat16": "float32"},
    "dskd_token_align": {"eta": "cma", "cma": "eta"},
    "equivalence": {"motab": "pwopsd", "pwopsd": "motab", "cis5300": "motab"},
    "extraction": EXTRACTION_ALTERNATIVES,
    "default": EXTRACTION_ALTERNATIVES,  # extraction.default
    "mode": {"seed": "ours", "ours": "seed"},  # the CoT filter's
    "lora_init": {"fresh": "sft_adapter", "sft_adapter": "fresh"},
    "prompt_order": {"shuffled": "file", "file": "shuffled"},
}


def leaves(tree, prefix=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, prefix + (key,))
    else:
        yield prefix, tree


def matches(pattern: str, key: tuple) -> bool:
    """Dotted pattern over a key: `*` matches one key, a trailing `**` one or more."""
    parts = pattern.split(".")
    if parts[-1] == "**":
        parts, key = parts[:-1], key[: len(parts) - 1] if len(key) >= len(parts) else key + ("",) * 99
    return len(parts) == len(key) and all(fnmatch.fnmatchcase(k, p) for p, k in zip(parts, key))


def changed(key: tuple, value):
    """A different valid value for a leaf."""
    if len(key) >= 2 and key[-2] == "extraction" and isinstance(value, list):
        return value[::-1]  # modes side by side: another first mode (the one the table shows)
    if key[-1] in ENUM_ALTERNATIVES and value in ENUM_ALTERNATIVES[key[-1]]:
        return ENUM_ALTERNATIVES[key[-1]][value]
    if key[-1] == "gpus":  # enough for a synthesis job's teacher and student on disjoint GPUs
        return value + 2
    if key[-1] == "seeds":
        return value + [max(value) + 1]
    if key[-1] == "eval_epochs":  # one more epoch, the first not listed (within num_train_epochs)
        return value + [next(e for e in range(1, 100) if e not in value)]
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        return value[:-1] + [changed(key, value[-1])]  # a sweep: its last value changed
    if key[-1] == "scale" and isinstance(value, list):  # a critic's score range [low, high]
        return [value[0], value[1] + 1]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.5
    if isinstance(value, str):
        return value + " changed"
    if isinstance(value, list):
        return value + ["changed"]
    raise TypeError(f"no change known for {'.'.join(key)} = {value!r}")


def overlay(key: tuple, value) -> dict:
    tree = value
    for part in reversed(key):
        tree = {part: tree}
    return tree


def toy_leaves(config: dict) -> list[tuple]:
    """Every leaf that could feed the toy study: its own subtree, its models, data and benchmarks,
    servers and the selection. The other studies' leaves are checked together in one plan."""
    study = config["studies"][STUDY]
    models = {study["teacher"], study["student"]} | {
        spec["model"] for spec in study["runs"].values() if "model" in spec
    }
    models |= {t["model"] for cfg in study["kd"].values() for t in cfg.get("teachers", []) if t["model"] != "self"}
    found = [k for k, _ in leaves({"studies": {STUDY: study}})]
    found += [k for k, _ in leaves({"models": {m: config["models"][m] for m in sorted(models)}})]
    found += [k for k, _ in leaves({"datasets": {d: config["datasets"][d] for d in sorted(study_datasets(study))}})]
    found += [k for k, _ in leaves({"benchmarks": {b: config["benchmarks"][b] for b in study["eval"]["benchmarks"]}})]
    found += [k for k, _ in leaves({"servers": config["servers"]})] + [("select",)]
    return found


def study_datasets(study: dict) -> set[str]:
    """The train data and every dataset a kd block takes prompts from."""
    found = {study["train_data"]}
    for cfg in study["kd"].values():
        found |= {t["prompts"] for t in cfg.get("teachers", [])} | ({cfg["prompts"]} if "prompts" in cfg else set())
    return found


def get(config: dict, key: tuple):
    for part in key:
        config = config[part]
    return config


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def complete_study(tmp_path_factory):
    """A copy of the workflow and package whose every toy-study output exists and is up to date
    (touched, not run), and the environment whose jobs run that copy's package."""
    workdir = copy_workflow(tmp_path_factory.mktemp("staleness"), with_package=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(workdir), str(REPO / "tests")]))
    make_up_to_date(workdir, [workdir / "config.yaml"], env)
    assert plan_many(workdir, [{"configfiles": ["config.yaml"]}], env) == [set()], "touched study not up to date"
    return workdir, env


@pytest.mark.slow
def test_every_config_value_reruns_exactly_what_it_feeds(complete_study):
    workdir, env = complete_study
    config = workflow_config(workdir)
    changes, unmatched = [], []
    for key in toy_leaves(config):
        if any(matches(p, key) for p in REFERENCES):
            continue
        rule = next((feeds for pattern, feeds in FEEDS if matches(pattern, key)), None)
        if rule is None:
            unmatched.append(".".join(key))
            continue
        value = changed(key, get(config, key))
        new_config = copy.deepcopy(config)
        get(new_config, key[:-1])[key[-1]] = value
        dag = ToyDag(new_config)  # the changed config's DAG (a new seed adds jobs)
        name = f"change{len(changes)}.yaml"
        (workdir / name).write_text(yaml.safe_dump(overlay(key, value)))
        changes.append((key, value, name, dag.downstream(rule(dag, key))))
    assert not unmatched, f"config values with no expectation in FEEDS or REFERENCES: {unmatched}"
    assert len(changes) >= 60
    started = time.perf_counter()
    plans = plan_many(workdir, [{"configfiles": ["config.yaml", name]} for _, _, name, _ in changes], env)
    print(f"{len(changes)} config values planned in {time.perf_counter() - started:.1f} s")
    failures = [
        f"{'.'.join(key)} -> {value!r}:\n  scheduled but not fed: {sorted(got - expected)}"
        f"\n  fed but not scheduled: {sorted(expected - got)}"
        for (key, value, _, expected), got in zip(changes, plans)
        if got != expected
    ]
    assert not failures, "\n".join(failures)
    assert any(expected for *_, expected in changes) and any(not expected for *_, expected in changes)


@pytest.mark.slow
def test_values_of_other_studies_rerun_nothing_of_the_toy_study(complete_study):
    workdir, env = complete_study
    config = workflow_config(workdir)
    study = config["studies"][STUDY]
    used_models = {study["teacher"], study["student"]}
    other = {
        "studies": {s: v for s, v in config["studies"].items() if s != STUDY},
        "models": {m: v for m, v in config["models"].items() if m not in used_models},
        "datasets": {d: v for d, v in config["datasets"].items() if d not in study_datasets(study)},
        "benchmarks": {b: v for b, v in config["benchmarks"].items() if b not in study["eval"]["benchmarks"]},
    }
    new = copy.deepcopy(other)
    count = 0
    for key, value in leaves(other):
        if key[-1] in (
            "source",
            "teacher",
            "student",
            "train_data",
            "server",
            "model",
            "sft",
            "kd",
            "from",
            "benchmarks",
            "rows",
            "path",
            "deepspeed",
            "engine",
            "loss",
            "format",
            "prompts",
            "teachers",
            "save_strategy",
            "split",
            "kd_suffix",
        ):
            continue  # references to files and other entries keep their meaning; enums whose valid
            # values depend on another key (a KDFlow loss, a benchmark file's format) stay too
        get(new, key[:-1])[key[-1]] = changed(key, value)
        count += 1
    (workdir / "others.yaml").write_text(yaml.safe_dump(new))
    assert count > 50
    assert plan_many(workdir, [{"configfiles": ["config.yaml", "others.yaml"]}], env) == [set()]


@pytest.mark.slow
def test_code_change_reruns_its_stage_and_descendants_only(complete_study):
    workdir, env = complete_study
    dag = ToyDag(workflow_config(workdir))
    edits = {
        "motab/synthesis/skd.py": dag.jobs("synth"),  # every synthesis job runs synthesis/run.py
        "motab/training/kd/objectives.py": dag.jobs("kd"),
        "motab/evaluation/metrics.py": dag.jobs("eval_grade"),
        "motab/tables/build.py": dag.jobs("table"),
    }
    plans = plan_many(workdir, [{"configfiles": ["config.yaml"], "edit": path} for path in edits], env)
    for (path, feeds), got in zip(edits.items(), plans):
        assert feeds and got == dag.downstream(feeds), path

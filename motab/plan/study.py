"""Typed views of a planned study: its runs, where each run's weights live, what it starts from and
what data it trained on. Everything here reads the expanded config (motab.plan.compose) and nothing
else: no files, no torch, so the whole run logic is unit-testable without Snakemake.

A run is one of four kinds, told apart by its keys:
- model: `model: <config model>`, the weights as published (or built, for toy models);
- sft:   `sft: <synthesis method>[.filtered]` or `sft: <the study's train_data>`, SFT from `from`
         (default: the study's student);
- kd:    `kd: <kd block>`, on-policy distillation from `from` (a run or a model; default the student);
- epoch: `epoch: k, epoch_of: <sft run>`, the checkpoint that SFT run saved at the end of epoch k.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from motab.errors import UserError
from motab.hubcache import DEFAULT_CACHE, cache_dir, hub_ref
from motab.plan.resources import job_resources
from motab.plan.sweeps import FILTERED, row_runs, synth_algorithm, training_seed
from motab.training.kd_config import (  # torch-free: the kd blocks' teachers and prompts
    SELF,
    kd_sources,
)

RUN_KINDS = ("model", "sft", "kd", "epoch")
STUDENT_METHODS = frozenset({"motab", "skd", "skd_tokens"})  # synthesis algorithms in which the student drafts
TRAIN_DATA_SFT = "train-data"  # sft_data folder of SFT on the train set's own solutions
# a server's start from local weights: a 32B model on a network filesystem takes minutes (the hub
# cache); studies.<s>.resources.<stage>.server_startup_s changes it
SERVER_STARTUP_S = 1200


class PlanError(UserError):
    """A study whose runs cannot be planned; the message names the config key."""


@dataclass(frozen=True)
class Run:
    """One run of a study: its name, kind and config entry (label included)."""

    name: str
    spec: Mapping

    @property
    def kind(self) -> str:
        # an epoch run also carries its SFT run's `sft`, so `epoch` is looked at first
        for kind in ("epoch", "model", "sft"):
            if kind in self.spec:
                return kind
        return "kd"

    @property
    def label(self) -> str:
        return self.spec.get("label", self.name)

    @property
    def trains(self) -> bool:
        """True for runs that train a checkpoint of their own (SFT and KD)."""
        return self.kind in ("sft", "kd")

    @property
    def train_seed(self) -> int | None:
        """A training-seed replica's own seed (studies.<s>.train_seeds); None for the run itself."""
        return self.spec.get("train_seed")

    @property
    def base(self) -> str:
        """The run a training-seed replica repeats (`<run>_ts<seed>` -> `<run>`); the run itself otherwise."""
        return self.spec.get("replica_of", self.name)


@dataclass(frozen=True)
class Study:
    """A study of the expanded config, with the catalogue (models, datasets, benchmarks) it names."""

    name: str
    cfg: Mapping
    models: Mapping
    datasets: Mapping
    benchmarks: Mapping
    servers: Mapping
    slurm: Mapping
    hub_cache: str = DEFAULT_CACHE

    @classmethod
    def of(cls, config: Mapping, name: str) -> Study:
        return cls(
            name,
            config["studies"][name],
            config["models"],
            config["datasets"],
            config["benchmarks"],
            config.get("servers", {}),
            config.get("slurm", {}),
            cache_dir(config),
        )

    def resource(self, stage: str, key: str):
        """A stage's resource value: studies.<s>.resources.<stage>.<key>, else the study's default."""
        resources = self.cfg["resources"]
        return resources.get(stage, {}).get(key, resources["default"][key])

    def server_startup_s(self, stage: str) -> int:
        """Seconds a job of the stage waits for each inference server it starts to become healthy."""
        resources = self.cfg["resources"]
        default = resources["default"].get("server_startup_s", SERVER_STARTUP_S)
        return resources.get(stage, {}).get("server_startup_s", default)

    def job_resources(self, stage: str, gpus: int) -> dict:
        """What one job of `stage` on `gpus` GPUs asks SLURM for (motab.plan.resources)."""
        return job_resources(self.cfg["resources"], self.slurm, stage, gpus)

    @cached_property
    def runs(self) -> dict[str, Run]:
        return {name: Run(name, spec) for name, spec in self.cfg["runs"].items()}

    def run(self, name: str) -> Run:
        return self.runs[name]

    def training_seed(self, run: str, block_seed: int | None) -> int | None:
        """The seed a run trains with: its replica's, else the study's first train_seeds, else the block's."""
        return training_seed(self.cfg, run, block_seed)

    def with_training_seed(self, run: str, block: Mapping) -> Mapping:
        """An SFT or KD block with the run's training seed (studies.<s>.train_seeds, a replica's own)."""
        seed = self.training_seed(run, block.get("seed"))
        return block if seed is None or seed == block.get("seed") else block | {"seed": seed}

    def row_runs(self, row: str) -> list[str]:
        """A table row's runs: the run itself, then its training-seed replicas in train_seeds order."""
        return row_runs(self.cfg, row)

    # --- models and checkpoints ------------------------------------------------------------

    def is_toy_model(self, model: str) -> bool:
        return self.models[model]["source"] == "toy"

    def model_location(self, model: str) -> str:
        """Folder of a model: built by the pipeline for toy models, the hub cache's snapshot of a
        pinned hub model (motab.plan.hub), the hub id or path as written otherwise."""
        if self.is_toy_model(model):
            return f"results/{self.name}/models/{model}"
        ref = hub_ref("models", self.models[model])
        return str(ref.snapshot(self.hub_cache)) if ref else self.models[model]["path"]

    def model_inputs(self, model: str) -> list[str]:
        """What a job reading the model waits for: the toy model's folder, a pinned hub model's
        download manifest, nothing for a path or hub id read as written."""
        if self.is_toy_model(model):
            return [self.model_location(model)]
        ref = hub_ref("models", self.models[model])
        return [str(ref.manifest(self.hub_cache))] if ref else []

    def model_revision(self, model: str) -> str | None:
        """The revision a job passes to the hub (SGLang --revision, model_revision): none for a
        model read from the hub cache, whose snapshot folder is that revision already."""
        entry = self.models.get(model, {})
        return None if hub_ref("models", entry) else entry.get("revision")

    def checkpoint_location(self, run: str) -> str:
        """Where the weights of a run live: its base model, or the SFT / KD checkpoint it trains."""
        spec = self.run(run).spec
        kind = self.run(run).kind
        if kind == "epoch":
            return f"results/{self.name}/ckpt/sft/{spec['epoch_of']}/epoch{spec['epoch']}"
        if kind == "model":
            return self.model_location(spec["model"])
        return f"results/{self.name}/ckpt/{kind}/{run}"

    def checkpoint_inputs(self, run: str) -> list[str]:
        """The pipeline-built files a run's weights depend on (none for a hub model)."""
        spec = self.run(run).spec
        if "model" in spec and not self.is_toy_model(spec["model"]):
            return self.model_inputs(spec["model"])
        if "epoch" in spec:
            return [f"results/{self.name}/ckpt/sft/{spec['epoch_of']}"]
        return [self.checkpoint_location(run)]

    # --- the `from` chain ------------------------------------------------------------------

    def start_of(self, run: str) -> str:
        """The run or model a trained run starts from: `from`, else the study's student."""
        return self.run(run).spec.get("from", self.cfg["student"])

    def start_location(self, run: str) -> str:
        source = self.start_of(run)
        return self.checkpoint_location(source) if source in self.runs else self.model_location(source)

    def start_inputs(self, run: str) -> list[str]:
        source = self.start_of(run)
        if source in self.runs:
            return self.checkpoint_inputs(source)
        return self.model_inputs(source)

    def run_model_name(self, run: str) -> str:
        """The config model a run's architecture comes from (for its server's tp), following `from`."""
        spec = self.run(run).spec
        if "model" in spec:
            return spec["model"]
        source = spec.get("from", self.cfg["student"])  # a second student: `from: Qwen2-7B`
        return self.run_model_name(source) if source in self.runs else source

    def run_model_revision(self, run: str) -> str | None:
        """The hub revision of a run's weights when they are a pinned hub model (else None)."""
        spec = self.run(run).spec
        return self.models.get(spec.get("model"), {}).get("revision") if "model" in spec else None

    # --- training data ---------------------------------------------------------------------

    def sft_on_train_data(self, run: str) -> bool:
        """True when a run's `sft` names the study's train_data (SFT on that set's own reference
        solutions, e.g. GSM8K's or OpenThoughts3's) rather than a synthesis method's file."""
        name = self.run(run).spec["sft"]
        if name.removesuffix(FILTERED) in self.cfg.get("synth", {}) or name not in self.datasets:
            return False
        if name != self.cfg["train_data"]:
            raise PlanError(
                f"studies.{self.name}.runs.{run}.sft: {name!r} is a dataset but not the study's "
                f"train_data ({self.cfg['train_data']!r}); SFT reads a synthesis method or the train data"
            )
        return True

    def sft_data_folder(self, run: str) -> str:
        """The sft_data/<folder> a run trains on: a synthesis method's, or the train data's own."""
        return TRAIN_DATA_SFT if self.sft_on_train_data(run) else self.run(run).spec["sft"]

    def synth_method_of(self, run: str) -> str | None:
        """The synthesis file a run's training data came from (following `from`), or None."""
        spec = self.run(run).spec
        if "sft" in spec:
            return None if self.sft_on_train_data(run) else spec["sft"]
        source = spec.get("from")
        if "kd" in spec and source in self.runs:
            return self.synth_method_of(source)
        return None

    # --- synthesis -------------------------------------------------------------------------

    def synth_student(self, method: str) -> str:
        """The drafting student: the entry's own `student` (a second student's runs), else the study's."""
        return self.cfg["synth"][method].get("student", self.cfg["student"])

    def synth_models(self, method: str) -> list[str]:
        """Config names of the models a synthesis method talks to: the teacher, and the drafting student."""
        drafts = synth_algorithm(method) in STUDENT_METHODS
        return [self.cfg["teacher"]] + ([self.synth_student(method)] if drafts else [])

    # --- KD --------------------------------------------------------------------------------

    def kd_cfg(self, run: str) -> Mapping:
        """The run's kd block, with the run's training seed."""
        return self.with_training_seed(run, self.cfg["kd"][self.run(run).spec["kd"]])

    def sft_cfg(self, run: str) -> Mapping:
        """The study's sft block, with the run's training seed."""
        return self.with_training_seed(run, self.cfg["sft"])

    def kd_sources(self, run: str) -> list[tuple[str, str, int | None]]:
        """(teacher, prompt dataset, prompts per step or None) of each teacher of a KD run."""
        return kd_sources(self.cfg, self.run(run).spec)

    def teacher_location(self, teacher: str) -> str:
        """A teacher's folder or hub id, or "self" (self-distillation from the starting weights)."""
        return teacher if teacher == SELF else self.model_location(teacher)

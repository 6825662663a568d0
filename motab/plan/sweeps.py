"""Sweep and per-epoch forms of a study's config, expanded into plain runs before planning.

Two short forms a user writes in a study file (studies/<study>.yaml; motab.plan.compose expands them before validation):

- **Synthesis sweep.** A list given for a numeric parameter of a synthesis entry,
  `skd: {gamma: [0.6, 0.7, 0.8, 0.9, 1.0], ...}`, becomes one entry per value, named
  `<entry>_<param><value>` with the value's "." written "p" (`skd_gamma0p6`), so each value has its
  own synthesis file. Several swept parameters give their product. Every run whose training data
  comes from a swept entry (`sft: skd`, `sft: skd.filtered`, or `from:` such a run) becomes one run
  per value, `<run>_<param><value>`, labelled "<label> (gamma 0.6)"; a table row naming the run
  lists its variants in order.
- **Per-epoch evaluation.** `eval_epochs: [1, 2, 3]` on an SFT run (with the study's
  `sft.save_strategy: epoch`) adds one run per epoch, `<run>_ep<k>`, that evaluates the checkpoint
  LLaMA-Factory saved at the end of epoch k (`<ckpt>/epoch<k>`, see motab.training.sft); a table
  row naming the run lists its epoch rows instead. The epoch runs carry only `epoch` and
  `epoch_of`, never the list, so adding an epoch reruns only its evaluation and the tables.

- **Training seeds.** `train_seeds: [0, 1, 2]` on a study trains every SFT and KD run once per seed:
  the run itself with the first seed (its SFT/KD `seed` set to it, see `training_seed`), and one
  replica per further seed, `<run>_ts<seed>`, carrying `train_seed` and `replica_of`. A replica
  starts from its start run's replica of the same seed (KD from SFT seed 1 is `kd_ts1` from
  `sft_ts1`); epoch runs follow their SFT run. Synthesis data and base models are shared. Table rows
  keep the runs' names; `row_runs` lists a row's replicas, which the tables aggregate over.

Synthesis entry names are an algorithm, optionally followed by `_<anything>` (`skd_7b`: SKD with
another drafting `student`); `synth_algorithm` reads it back.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping

from motab.errors import UserError

ALGORITHMS = ("teacher_only", "motab", "skd", "skd_tokens")  # motab.synthesis.run's methods
FILTERED = ".filtered"


class SweepError(UserError):
    """A sweep or eval_epochs entry that cannot be expanded; the message names the config key."""


def synth_algorithm(name: str) -> str:
    """The algorithm of a synthesis entry name: `skd`, `skd_7b`, `skd_gamma0p6` -> `skd`."""
    for algorithm in sorted(ALGORITHMS, key=len, reverse=True):
        if name == algorithm or name.startswith(algorithm + "_"):
            return algorithm
    raise SweepError(f"synthesis entry {name!r}: its name must start with an algorithm ({', '.join(ALGORITHMS)})")


def value_token(value: float) -> str:
    """A swept value as part of a name: 0.6 -> "0p6", 1.0 -> "1p0", 1e-06 -> "1em06", -2 -> "m2"."""
    return repr(value).replace(".", "p").replace("-", "m").replace("+", "")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def expand_synth(study: str, synth: Mapping) -> tuple[dict, dict[str, list[tuple[str, str]]]]:
    """(expanded synth block, {swept entry: [(name suffix, label note), ...]})."""
    out: dict = {}
    variants: dict[str, list[tuple[str, str]]] = {}
    for entry, params in synth.items():
        swept = sorted(key for key, value in params.items() if isinstance(value, list))
        if not swept:
            out[entry] = params
            continue
        for key in swept:
            values = params[key]
            where = f"studies.{study}.synth.{entry}.{key}"
            if not values or not all(_is_number(v) for v in values):
                raise SweepError(f"{where}: a sweep is a non-empty list of numbers, found {values!r}")
            if len(set(values)) != len(values):
                raise SweepError(f"{where}: a swept value appears twice in {values!r}")
        variants[entry] = []
        for combo in itertools.product(*(params[key] for key in swept)):
            suffix = "_".join(f"{key}{value_token(value)}" for key, value in zip(swept, combo))
            note = ", ".join(f"{key} {value}" for key, value in zip(swept, combo))
            out[f"{entry}_{suffix}"] = dict(params) | dict(zip(swept, combo))
            variants[entry].append((suffix, note))
    return out, variants


def _run_variants(study: str, runs: Mapping, synth_variants: Mapping) -> dict[str, list[tuple[str, str]]]:
    """{run: [(suffix, note)]} for runs trained (directly or through `from`) on a swept entry."""
    found: dict[str, list[tuple[str, str]]] = {}

    def of(run: str, seen: tuple[str, ...]) -> list[tuple[str, str]] | None:
        if run in seen:
            raise SweepError(f"studies.{study}.runs.{run}.from: a cycle ({' -> '.join(seen + (run,))})")
        spec = runs[run]
        if "sft" in spec:
            return synth_variants.get(spec["sft"].removesuffix(FILTERED))
        source = spec.get("from")
        return of(source, seen + (run,)) if source in runs else None

    for run in runs:
        result = of(run, ())
        if result:
            found[run] = result
    return found


def expand_runs(study: str, runs: Mapping, synth_variants: Mapping) -> tuple[dict, dict[str, list[str]]]:
    """(expanded runs, {run: the runs that replace it in table rows}) for the synthesis sweeps."""
    swept = _run_variants(study, runs, synth_variants)
    out: dict = {}
    rows: dict[str, list[str]] = {}
    for run, spec in runs.items():
        if run not in swept:
            out[run] = spec
            continue
        rows[run] = []
        for suffix, note in swept[run]:
            new = dict(spec)
            if "sft" in spec:
                base = spec["sft"].removesuffix(FILTERED)
                new["sft"] = f"{base}_{suffix}" + (FILTERED if spec["sft"].endswith(FILTERED) else "")
            elif spec.get("from") in swept:
                new["from"] = f"{spec['from']}_{suffix}"
            new["label"] = f"{spec.get('label', run)} ({note})"
            name = f"{run}_{suffix}"
            if name in runs:
                raise SweepError(f"studies.{study}.runs.{name}: the name is taken by the sweep of run {run!r}")
            out[name] = new
            rows[run].append(name)
    return out, rows


def expand_epochs(study: str, runs: Mapping, sft: Mapping | None) -> tuple[dict, dict[str, list[str]]]:
    """(runs with one `<run>_ep<k>` per eval_epochs entry, {run: its epoch runs})."""
    out: dict = {}
    rows: dict[str, list[str]] = {}
    for run, spec in runs.items():
        spec = dict(spec)
        epochs = spec.pop("eval_epochs", None)
        out[run] = spec
        if epochs is None:
            continue
        where = f"studies.{study}.runs.{run}.eval_epochs"
        if "sft" not in spec:
            raise SweepError(f"{where}: only an SFT run (`sft:`) keeps a checkpoint per epoch")
        if not sft or sft.get("save_strategy") != "epoch":
            raise SweepError(
                f"{where}: needs studies.{study}.sft.save_strategy: epoch (found {(sft or {}).get('save_strategy')!r})"
            )
        total = sft.get("num_train_epochs", 0)
        if (
            not epochs
            or any(not isinstance(e, int) or isinstance(e, bool) or not 1 <= e <= total for e in epochs)
            or len(set(epochs)) != len(epochs)
        ):
            raise SweepError(
                f"{where}: expected distinct whole epochs between 1 and num_train_epochs ({total}), found {epochs!r}"
            )
        rows[run] = []
        for epoch in epochs:
            name = f"{run}_ep{epoch}"
            if name in runs:
                raise SweepError(f"studies.{study}.runs.{name}: the name is taken by epoch {epoch} of run {run!r}")
            out[name] = {key: value for key, value in spec.items() if key in ("sft", "from", "teacher")} | {
                "epoch": epoch,
                "epoch_of": run,
                "label": f"{spec.get('label', run)} (epoch {epoch})",
            }
            rows[run].append(name)
    return out, rows


TRAIN_SEED_SUFFIX = "_ts"


def _trains(runs: Mapping, run: str) -> bool:
    """A run that trains weights (SFT or KD), or an epoch checkpoint of one."""
    spec = runs[run]
    return "sft" in spec or "kd" in spec or "epoch_of" in spec


def expand_train_seeds(study: str, runs: Mapping, seeds: list[int] | None) -> dict:
    """Runs with one `<run>_ts<seed>` replica per training seed after the first (see the module doc)."""
    if not seeds:
        return dict(runs)
    where = f"studies.{study}.train_seeds"
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"{where}: a seed appears twice in {seeds!r}")
    out = dict(runs)
    for seed in seeds[1:]:
        for run, spec in runs.items():
            if not _trains(runs, run):
                continue
            name = f"{run}{TRAIN_SEED_SUFFIX}{seed}"
            if name in runs:
                raise SweepError(f"studies.{study}.runs.{name}: the name is taken by training seed {seed} of {run!r}")
            new = dict(spec) | {"train_seed": seed, "replica_of": run}
            for key in ("from", "epoch_of"):
                if spec.get(key) in runs and _trains(runs, spec[key]):
                    new[key] = f"{spec[key]}{TRAIN_SEED_SUFFIX}{seed}"
            new["label"] = f"{spec.get('label', run)} (training seed {seed})"
            out[name] = new
    return out


def training_seed(study_cfg: Mapping, run: str, block_seed: int | None) -> int | None:
    """The seed an SFT or KD run trains with: its replica's, else the study's first training seed,
    else its SFT/KD block's own."""
    spec = study_cfg["runs"][run]
    if "train_seed" in spec:
        return spec["train_seed"]
    seeds = study_cfg.get("train_seeds")
    return seeds[0] if seeds else block_seed


def row_runs(study_cfg: Mapping, row: str) -> list[str]:
    """A table row's runs: the run itself, then its training-seed replicas in train_seeds order."""
    runs = study_cfg["runs"]
    replicas = {spec["train_seed"]: name for name, spec in runs.items() if spec.get("replica_of") == row}
    return [row] + [replicas[seed] for seed in (study_cfg.get("train_seeds") or [])[1:] if seed in replicas]


def _replace_rows(rows: list[str], *mappings: Mapping[str, list[str]]) -> list[str]:
    for mapping in mappings:
        rows = [new for row in rows for new in mapping.get(row, [row])]
    return rows


def expand_study(study: str, cfg: Mapping) -> dict:
    """A study's config with its sweeps and eval_epochs expanded (the input is not changed)."""
    cfg = copy.deepcopy(dict(cfg))
    synth_variants: dict = {}
    if cfg.get("synth"):
        for entry in cfg["synth"]:
            try:
                synth_algorithm(entry)
            except SweepError as exc:
                raise SweepError(f"studies.{study}.synth.{entry}: {exc}") from None
        cfg["synth"], synth_variants = expand_synth(study, cfg["synth"])
    runs, swept_rows = expand_runs(study, cfg["runs"], synth_variants)
    runs, epoch_rows = expand_epochs(study, runs, cfg.get("sft"))
    cfg["runs"] = expand_train_seeds(study, runs, cfg.get("train_seeds"))
    for table in cfg.get("tables", {}).values():
        table["rows"] = _replace_rows(list(table["rows"]), swept_rows, epoch_rows)
    return cfg


def expand_config(config: Mapping) -> dict:
    """The whole config with every study expanded (what the plan is made from)."""
    out = dict(config)
    out["studies"] = {name: expand_study(name, study) for name, study in config["studies"].items()}
    return out

"""A CPU rehearsal of a paper study: the same DAG on toy-sized stand-ins (studies/variants/rehearse.yaml).

A top-level `rehearsal:` block declares the substitutions; `rehearse` applies them to the raw config
(before run grids, references and sweeps are expanded), so a rehearsed study keeps its modes, engines,
sweeps, epochs, grids, tables and published numbers, and changes only in what the block names:

- models: `teacher`, `student`, `model` and `from` values renamed by `models` (Qwen3-32B -> toy-teacher);
- data: every non-toy dataset becomes a copy of `datasets.<dataset>` under its own name, every non-toy
  benchmark the `benchmark` stand-in under its own name and label (tables and reference rows line up);
- the inference server (`server`), the resources (`resources`: no GPUs), keys dropped per block
  (`drop`: DeepSpeed, flash-attn, ...), numbers capped per block (`caps`: steps, samples, budgets);
- `kd` blocks of an engine CPUs cannot run (KDFlow) replaced by the built-in trainer block `kdflow`;
- each table: `avg@N` follows a capped eval n, the title says REHEARSAL and a note names every
  substitution made, so no rehearsal number is read as the paper's.

Torch-free and file-free: the substitutions are a function of the config.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping

from motab.errors import UserError

MODEL_KEYS = ("teacher", "student", "model", "from")
BLOCKS = ("synth", "sft", "kd", "eval")  # the study keys `caps` and `drop` may name
TITLE = "REHEARSAL (CPU, toy stand-ins; not the paper's numbers)"
METRIC_N = re.compile(r"^(\w+)@(\d+)(/.*)?$")


class RehearsalError(UserError):
    """A `rehearsal:` block that cannot be applied; the message names the key."""


def rehearse(config: Mapping) -> dict:
    """The config with its `rehearsal:` block applied to the studies it names; unchanged (a copy)
    without one."""
    out = copy.deepcopy(dict(config))
    spec = out.get("rehearsal")
    if not spec:
        return out
    _check(spec, out)
    real = copy.deepcopy(out)
    _catalogue(out, spec)
    for name in spec["studies"]:
        study = out["studies"][name]
        n = study.get("eval", {}).get("n")
        _tables(study, _data_notes(study, real, spec) + _study(name, study, spec), n)
    return out


def _check(spec, config: Mapping) -> None:
    """What the block must hold before it is applied (the schema sees only its result)."""
    if not isinstance(spec, Mapping) or not {"studies", "dataset", "benchmark"} <= set(spec):
        raise RehearsalError(f"rehearsal: expected studies, dataset and benchmark (and optional keys), found {spec!r}")
    for key, kind in (("studies", list), ("benchmark", Mapping), ("models", Mapping), ("caps", Mapping)):
        if key in spec and not isinstance(spec[key], kind):
            raise RehearsalError(f"rehearsal.{key}: expected a {kind.__name__.lower()}, found {spec[key]!r}")
    unknown = sorted(set(spec["studies"]) - set(config["studies"]))
    if unknown:
        raise RehearsalError(f"rehearsal.studies: {unknown} are not studies (studies: {sorted(config['studies'])})")
    for source, target in spec.get("models", {}).items():
        if config["models"].get(target, {}).get("source") != "toy":
            raise RehearsalError(f"rehearsal.models.{source}: {target!r} is not a toy model of config.yaml `models`")
    if config["datasets"].get(spec["dataset"], {}).get("source") != "toy":
        raise RehearsalError(f"rehearsal.dataset: {spec['dataset']!r} is not a toy dataset of config.yaml `datasets`")


def _catalogue(config: dict, spec: Mapping) -> None:
    """Every non-toy dataset and benchmark replaced by its stand-in, names (and labels) kept."""
    toy = config["datasets"][spec["dataset"]]
    for name, data in config["datasets"].items():
        if data["source"] != "toy":
            config["datasets"][name] = copy.deepcopy(toy)
    for name, bench in config["benchmarks"].items():
        if bench["source"] != "toy":
            config["benchmarks"][name] = copy.deepcopy(dict(spec["benchmark"])) | {"label": bench.get("label", name)}


def _data_notes(study: Mapping, real: Mapping, spec: Mapping) -> list[str]:
    """What the study's datasets and benchmarks became (read before the study is changed)."""
    toy = real["datasets"][spec["dataset"]]
    named = {study["train_data"], *_values(study.get("kd", {}), "prompts")}
    datasets = sorted(n for n in named if real["datasets"].get(n, {}).get("source", "toy") != "toy")
    benches = [b for b in study["eval"]["benchmarks"] if real["benchmarks"][b]["source"] != "toy"]
    notes = [f"data {', '.join(datasets)} -> toy problems ({toy['num_train']})"] if datasets else []
    if benches:
        notes.append(f"benchmarks {', '.join(benches)} -> the toy's {toy['num_test']} held-out problems each")
    adapters = sorted({real["benchmarks"][b].get("evalscope", b) for b in benches})
    if study["eval"].get("engine") == "evalscope" and adapters and "evalscope" in spec["benchmark"]:
        notes.append(f"EvalScope {', '.join(adapters)} -> its {spec['benchmark']['evalscope']} adapter")
    return notes


def _values(node, key: str) -> list:
    """Every string under `key` in nested mappings and lists (a kd block's prompts, its teachers')."""
    if isinstance(node, Mapping):
        own = [node[key]] if isinstance(node.get(key), str) else []
        return own + [v for value in node.values() for v in _values(value, key)]
    return [v for item in node for v in _values(item, key)] if isinstance(node, list) else []


def _study(name: str, study: dict, spec: Mapping) -> list[str]:
    """The study's own substitutions, in place; one note per kind of change."""
    notes = []
    renamed = _rename_models(study, spec.get("models", {}))
    if renamed:
        notes.append("models: " + ", ".join(f"{a} -> {b}" for a, b in sorted(renamed.items())))
    if spec.get("server") and study.get("server") != spec["server"]:
        notes.append(f"server: {study.get('server')} -> {spec['server']}")
        study["server"] = spec["server"]
    notes += _kdflow(study, spec.get("kdflow"))
    notes += _set(study, spec.get("set", {}).get(name, {}))
    for block in BLOCKS:
        notes += _drop(study, block, spec.get("drop", {}).get(block, []))
        notes += _caps(study, block, spec.get("caps", {}).get(block, {}))
    gpus = sorted({v.get("gpus", 0) for v in study.get("resources", {}).values() if isinstance(v, Mapping)} - {0})
    if gpus:
        notes.append(f"GPUs per job: {'/'.join(map(str, gpus))} -> 0 (CPU)")
    study["resources"] = copy.deepcopy(dict(spec.get("resources", {})))
    return notes


def _set(node: dict, values: Mapping, path: str = "") -> list[str]:
    """Values a study must change to run on the toy (`set.<study>`, e.g. a filter that needs GSM8K's
    "#### x", which the toy never writes), merged key by key; one note per value."""
    notes = []
    for key, value in values.items():
        where = f"{path}{key}"
        if isinstance(value, Mapping) and isinstance(node.get(key), dict):
            notes += _set(node[key], value, f"{where}.")
        else:
            notes.append(f"{where} {node.get(key)} -> {value}")
            node[key] = copy.deepcopy(value)
    return notes


def _rename_models(node, models: Mapping, renamed: dict | None = None) -> dict:
    """`teacher`/`student`/`model`/`from` values that are mapped models, renamed in place (labels stay)."""
    renamed = {} if renamed is None else renamed
    if isinstance(node, dict):
        for key, value in node.items():
            if key in MODEL_KEYS and isinstance(value, str) and value in models:
                renamed[value] = node[key] = models[value]
            else:
                _rename_models(value, models, renamed)
    elif isinstance(node, list):
        for item in node:
            _rename_models(item, models, renamed)
    return renamed


def _kdflow(study: dict, builtin: Mapping | None) -> list[str]:
    """KDFlow blocks (GPU-only: Ray, SGLang rollouts) -> the built-in trainer with the `kdflow` block."""
    blocks = sorted(n for n, b in study.get("kd", {}).items() if b.get("engine") == "kdflow")
    if not blocks:
        return []
    if not builtin:
        raise RehearsalError(f"rehearsal.kdflow: needed for the KDFlow kd blocks {blocks} (a built-in kd block)")
    for name in blocks:
        study["kd"][name] = copy.deepcopy(dict(builtin))
    return [f"KDFlow ({', '.join(blocks)}) -> the built-in KD trainer (loss {builtin.get('loss')})"]


def _blocks(study: dict, block: str) -> list[dict]:
    """The mappings a block's keys live in: synth/kd entries, the sft block, eval and its per_benchmark."""
    value = study.get(block)
    if not isinstance(value, dict):
        return []
    if block in ("synth", "kd"):
        return [v for v in value.values() if isinstance(v, dict)]
    return [value, *value.get("per_benchmark", {}).values()] if block == "eval" else [value]


def _drop(study: dict, block: str, keys: list[str]) -> list[str]:
    dropped = sorted({k for entry in _blocks(study, block) for k in keys if entry.pop(k, None) is not None})
    return [f"{block}: {', '.join(dropped)} off (CPU)"] if dropped else []


def _caps(study: dict, block: str, caps: Mapping) -> list[str]:
    """Numbers (and lists of numbers: a sweep stays a sweep) above a cap lowered to it."""
    lowered: dict[str, set] = {}
    for entry in _blocks(study, block):
        for key, cap in caps.items():
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= cap:
                continue
            entry[key] = cap
            lowered.setdefault(key, set()).add(value)
    return [
        f"{block} {key} {'/'.join(_num(v) for v in sorted(old))} -> {_num(caps[key])}"
        for key, old in sorted(lowered.items())
    ]


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _tables(study: dict, notes: list[str], n: int | None) -> None:
    """Each table titled and noted as a rehearsal; a metric `<kind>@N` of the study's eval n (`n`)
    follows n when it was capped."""
    capped = study.get("eval", {}).get("n")
    for table in study.get("tables", {}).values():
        match = METRIC_N.match(table["metric"])
        if match and int(match.group(2)) == n != capped:
            table["metric"] = f"{match.group(1)}@{capped}{match.group(3) or ''}"
        table["title"] = f"{TITLE}: {table['title']}"
        table["note"] = "Rehearsal on CPU: " + "; ".join(notes) + "."

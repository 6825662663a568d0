"""Run LLaMA-Factory's own `get_train_args` on training YAMLs, on a machine without GPUs.

    python tests/llamafactory_check.py GPUS ENV_YAML < configs.json   (a JSON list of YAML dicts)

ENV_YAML is the stage's conda env (envs/sft.yaml): its pip pins that this interpreter lacks (deepspeed,
a CUDA build) are made visible as package metadata only, so LLaMA-Factory's version checks answer
with the sft env's versions; nothing of them is imported.

prints one JSON line: {"errors": [null or the error of each config], "mandatory": [the packages
LLaMA-Factory requires for these configs (its check_version(..., mandatory=True) calls, observed, not
changed)]}, so a test can hold them against the sft env's pins. Only two device probes are answered as on
the job's GPU node, so every argument check of LLaMA-Factory and transformers runs unchanged:
- transformers' `is_torch_bf16_gpu_available` answers True (an Ampere+ GPU, as H100/H200);
- `TrainingArguments._setup_devices` (where torchrun's process group and DeepSpeed's NCCL backend
  start) answers as rank 0 of a GPUS-process torchrun: distributed, DeepSpeed when the YAML names a
  DeepSpeed config, device cuda:0. No process group is started and no GPU is touched.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from functools import cached_property
from types import SimpleNamespace


def env_pins(env_yaml: str) -> dict[str, str]:
    import yaml

    with open(env_yaml, encoding="utf-8") as handle:
        deps = yaml.safe_load(handle)["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    return dict(line.split("==", 1) for line in pip if "==" in line)


def show_env_metadata(pins: dict[str, str], folder: str) -> None:
    from importlib import metadata

    for name, version in pins.items():
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            info = os.path.join(folder, f"{name.replace('-', '_')}-{version}.dist-info")
            os.makedirs(info, exist_ok=True)
            with open(os.path.join(info, "METADATA"), "w", encoding="utf-8") as handle:
                handle.write(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    sys.path.append(folder)


def answer_device_probes(gpus: int) -> None:
    import torch
    import transformers.training_args as training_args
    from accelerate.utils import DistributedType

    def setup_devices(self):
        kind = DistributedType.DEEPSPEED if self.deepspeed else DistributedType.MULTI_GPU
        device = torch.device("cuda", 0)
        self.distributed_state = SimpleNamespace(
            distributed_type=kind, num_processes=gpus, process_index=0, local_process_index=0, device=device
        )
        self._n_gpu = 1
        return device

    training_args.is_torch_bf16_gpu_available = lambda: True
    cached = cached_property(setup_devices)
    cached.__set_name__(training_args.TrainingArguments, "_setup_devices")
    training_args.TrainingArguments._setup_devices = cached


def observe_mandatory(seen: set[str]) -> None:
    import llamafactory.hparams.parser as parser

    original = parser.check_version

    def check_version(requirement: str, mandatory: bool = False) -> None:
        if mandatory:
            seen.add(requirement)
        original(requirement, mandatory)

    parser.check_version = check_version


def check(config: dict) -> str | None:
    from llamafactory.hparams import get_train_args

    try:
        get_train_args(dict(config))
    except (ValueError, ImportError, RuntimeError, OSError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


if __name__ == "__main__":
    answer_device_probes(int(sys.argv[1]))
    show_env_metadata(env_pins(sys.argv[2]), tempfile.mkdtemp())
    mandatory: set[str] = set()
    observe_mandatory(mandatory)
    errors = [check(config) for config in json.load(sys.stdin)]
    print(json.dumps({"errors": errors, "mandatory": sorted(mandatory)}))

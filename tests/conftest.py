"""Shared fixtures: a real (random-weight) tiny Qwen3 checkpoint with the toy tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
# The real benchmark files some tests read: a folder outside the repository that a user's clone
# lacks (those tests then skip, saying why) and CI has (MOTAB_REQUIRE_SHARED_DATA=1: a skip fails).
SHARED_DATA_ENV, REQUIRE_ENV = "MOTAB_SHARED_DATA", "MOTAB_REQUIRE_SHARED_DATA"
SHARED_DATA = Path(os.environ.get(SHARED_DATA_ENV) or REPO.parent / "shared" / "data").resolve()
SHARED_DATA_CONFIG = REPO / "tests" / "configs" / "shared_data.yaml"


def _toy_texts(n: int = 300) -> list[str]:
    from motab.toy.tasks import TaskSpec, generate_problems
    from motab.toy.tokenizer import chat_text

    rows = generate_problems(TaskSpec(), n=n, seed=0)
    return [chat_text(r["question"], r["solution"]) for r in rows]


@pytest.fixture(scope="session")
def toy_tokenizer_dir(tmp_path_factory) -> Path:
    from motab.toy.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("toy_tokenizer")
    train_tokenizer(_toy_texts(), vocab_size=300, out_dir=out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, toy_tokenizer_dir) -> Path:
    """A saved random-init Qwen3ForCausalLM (~60K params) plus tokenizer and chat template."""
    from transformers import AutoTokenizer

    from motab.toy.model import ModelShape, build_qwen3, save_checkpoint

    tok = AutoTokenizer.from_pretrained(toy_tokenizer_dir)
    model = build_qwen3(
        tok, ModelShape(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64), seed=0
    )
    out = tmp_path_factory.mktemp("tiny_model")
    save_checkpoint(model, tok, out)
    return out


def require_shared_data() -> Path:
    """The real benchmark files' folder; skips the test (fails it under CI) where it is absent."""
    if not SHARED_DATA.is_dir():
        reason = f"real benchmark files not found at {SHARED_DATA} (set {SHARED_DATA_ENV} to their folder)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}; {REQUIRE_ENV}=1 (CI) does not allow skipping these tests")
        pytest.skip(reason)
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_shared_data()


@pytest.fixture(scope="session")
def shared_data_config(shared_data, tmp_path_factory) -> Path:
    """tests/configs/shared_data.yaml with the folder filled in: a --configfile pointing config.yaml's
    hub benchmarks at the real files."""
    out = tmp_path_factory.mktemp("shared_data_config") / "shared_data.yaml"
    out.write_text(SHARED_DATA_CONFIG.read_text().replace("{shared_data}", str(shared_data)))
    return out


@pytest.fixture(scope="session")
def tiny_server(tiny_model_dir, tmp_path_factory) -> str:
    """The URL of one embedded server (the pipeline's `motab serve` command, one thread, seed 0) on
    the tiny model, shared by the serving tests: their requests are independent of each other."""
    from motab.serving.launch import LOCAL_SERVER, serving

    log = tmp_path_factory.mktemp("tiny_server") / "server.log"
    with serving(LOCAL_SERVER + " --threads 1 --seed 0", str(tiny_model_dir), log, startup_timeout_s=120) as url:
        yield url


# --- KD: a tiny student and a sharper tiny teacher (test_onpolicy, test_kd_*, test_multi_teacher, ...) ---

KD_SHAPE = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64}


@pytest.fixture(scope="module")
def kd_setup(tmp_path_factory) -> dict[str, Path]:
    """Toy tokenizer, a tiny student, a different tiny "teacher" with peaked outputs, and prompts.

    Built here rather than from conftest's tiny_model_dir so the teacher can differ from the student.
    """
    import torch
    from transformers import AutoTokenizer

    from motab.jsonio import write_jsonl
    from motab.toy.model import ModelShape, build_qwen3, save_checkpoint
    from motab.toy.tasks import TaskSpec, generate_problems
    from motab.toy.tokenizer import chat_text, train_tokenizer

    root = tmp_path_factory.mktemp("kd")
    rows = generate_problems(TaskSpec(), n=200, seed=0)
    train_tokenizer([chat_text(r["question"], r["solution"]) for r in rows], vocab_size=300, out_dir=root / "tok")
    tok = AutoTokenizer.from_pretrained(root / "tok")
    student = build_qwen3(tok, ModelShape(**KD_SHAPE), seed=0)
    save_checkpoint(student, tok, root / "student")
    teacher = build_qwen3(tok, ModelShape(**KD_SHAPE), seed=1)
    with torch.no_grad():  # sharpen the random teacher so the student has something to learn
        teacher.model.norm.weight.mul_(40.0)
    save_checkpoint(teacher, tok, root / "teacher")
    write_jsonl(
        root / "prompts.jsonl",
        [
            {
                "id": r["id"],
                "messages": [{"role": "user", "content": r["question"]}],
                "answer": r["answer"],
                "solution": r["solution"],
            }
            for r in rows[:20]
        ],
    )
    return {"root": root, "student": root / "student", "teacher": root / "teacher", "prompts": root / "prompts.jsonl"}

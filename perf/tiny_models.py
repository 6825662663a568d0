"""The tiny models the perf scripts measure on: the toy tokenizer (vocab 300, trained on toy
problems) and random Qwen3-architecture checkpoints, as tests/conftest.py builds them.

    from tiny_models import build_tiny_models, write_prompts   # perf/ is the script's own folder
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_models(root: Path, seeds: dict[str, int], hidden: int, layers: int, texts: int = 300) -> list[dict]:
    """root/tok and one checkpoint per `seeds` entry (root/<name>, weights drawn with that seed);
    returns the toy problems the tokenizer was trained on (`texts` of them)."""
    from transformers import AutoTokenizer

    from motab.toy.model import ModelShape, build_qwen3, save_checkpoint
    from motab.toy.tasks import TaskSpec, generate_problems
    from motab.toy.tokenizer import chat_text, train_tokenizer

    rows = generate_problems(TaskSpec(), n=texts, seed=0)
    train_tokenizer([chat_text(r["question"], r["solution"]) for r in rows], vocab_size=300, out_dir=root / "tok")
    tok = AutoTokenizer.from_pretrained(root / "tok")
    shape = ModelShape(hidden_size=hidden, num_layers=layers, num_heads=4, num_kv_heads=2, intermediate_size=4 * hidden)
    for name, seed in seeds.items():
        save_checkpoint(build_qwen3(tok, shape, seed=seed), tok, root / name)
    return rows


def write_prompts(path: Path, rows: list[dict]) -> None:
    """kd-train's prompt file: one user message per problem."""
    from motab.jsonio import write_jsonl

    write_jsonl(path, [{"id": r["id"], "messages": [{"role": "user", "content": r["question"]}]} for r in rows])

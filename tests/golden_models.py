"""The two toy checkpoints and problems of the synthesis golden tests (tests/test_synth_golden.py).

Random-init tiny Qwen3 models (seeded) whose output embeddings favour a handful of tokens (".",
"\\n\\n", digits, "+", "=", EOS), so greedy decoding writes steps that end in ".\\n\\n", and EOS
turns up mid-trajectory: the stop-string and EOS paths of the released scripts get exercised.
Deterministic on CPU: the same bytes on every machine with the pinned torch/transformers.
"""

from __future__ import annotations

from pathlib import Path

NOISE = 1.0
STOP_TOKEN = ".\n\n"
FAVOURED = [STOP_TOKEN, ".", "1", "2", "3", "4", "5", "6", "+", "=", " ", "<|im_end|>"]


def build_tokenizer(out: Path):
    from tokenizers import AddedToken

    from motab.toy.tasks import TaskSpec, generate_problems
    from motab.toy.tokenizer import chat_text, train_tokenizer

    rows = generate_problems(TaskSpec(), n=300, seed=0)
    tok = train_tokenizer(
        [chat_text(r["question"], r["solution"]) for r in rows], vocab_size=300, out_dir=out, pre_tokenizer="gpt2"
    )
    # one token for the scripts' step stop string, as Qwen's vocabulary has (".ĊĊ")
    tok.add_tokens([AddedToken(STOP_TOKEN, normalized=False, special=False)])
    tok.save_pretrained(str(out))
    return tok


def build_model(tokenizer, out: Path, seed: int, boost: float, noise: float = 0.0, noise_seed: int = 0) -> Path:
    """Save a seeded tiny model whose favoured tokens' output rows are scaled by `boost`; `noise`
    adds seeded Gaussian noise to the output rows (a student that half agrees with its teacher)."""
    import torch

    from motab.toy.model import ModelShape, build_qwen3, save_checkpoint

    model = build_qwen3(
        tokenizer,
        ModelShape(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64),
        seed=seed,
    )
    ids = sorted({i for text in FAVOURED for i in tokenizer.encode(text, add_special_tokens=False)})
    # untied, freshly drawn output embeddings (tied random ones just repeat the last input token),
    # the favoured rows scaled by `boost`
    gen = torch.Generator().manual_seed(seed)
    head = torch.randn(model.lm_head.weight.shape, generator=gen)
    head[ids] *= boost
    if noise:
        head += noise * torch.randn(head.shape, generator=torch.Generator().manual_seed(noise_seed))
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(head)
    save_checkpoint(model, tokenizer, out)
    return out


def build_pair(root: Path) -> tuple[Path, Path]:
    """(teacher_dir, student_dir) under root."""
    from transformers import AutoTokenizer

    tok_dir = root / "tokenizer"
    build_tokenizer(tok_dir)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    return (
        build_model(tok, root / "teacher", seed=22, boost=4.0),
        build_model(tok, root / "student", seed=22, boost=4.0, noise=NOISE, noise_seed=7),
    )


def problems(n: int = 10) -> list[dict]:
    """Toy problems in the release's input shape ({"id", "input"}), plus answer for our pipeline."""
    from motab.toy.tasks import TaskSpec, generate_problems

    rows = generate_problems(TaskSpec(), n=n, seed=123)
    return [{"id": f"g{i:02d}", "input": r["question"], "answer": str(r["answer"])} for i, r in enumerate(rows)]

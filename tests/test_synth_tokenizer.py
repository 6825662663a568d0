"""The synthesis client's tokenizer (motab/synthesis/tokenizer.py): tokenizer.json through the
`tokenizers` library where it encodes exactly as AutoTokenizer does, AutoTokenizer everywhere else."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from motab.synthesis.run import needs_chat_template
from motab.synthesis.skd import SkdParams
from motab.synthesis.skd_tokens import SkdTokensParams
from motab.synthesis.teacher_only import TeacherOnlyParams
from motab.synthesis.tokenizer import (
    FileTokenizer,
    file_tokenizer_problem,
    load_tokenizer,
)

sys.path.insert(0, str(Path(__file__).parent))
import golden_models

REPO = Path(__file__).resolve().parents[1]
TEXTS = [
    "Compute 16 + 44 + 21.",
    "Compute 16 + 44 + 21..\n\n16 + 44 = 60.\n\n60 + 21 = 81.\n\n",
    "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    "  two  spaces, a tab\tand\r\nCRLF; unicode: é ü 中文 ∑ 🙂",
    r"$\frac{1}{2} + \sqrt{3}$, \boxed{42}",
    "",
    ".\n\n.\n\n.\n\n",
]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_tok")
    golden_models.build_tokenizer(out)
    return out


def variant(tok_dir: Path, tmp_path: Path, config=None, tokenizer=None) -> Path:
    """A copy of the tokenizer folder with its tokenizer_config / tokenizer.json edited."""
    out = tmp_path / "variant"
    shutil.copytree(tok_dir, out)
    for name, edit in (("tokenizer_config.json", config), ("tokenizer.json", tokenizer)):
        if edit:
            data = json.loads((out / name).read_text())
            edit(data)
            (out / name).write_text(json.dumps(data))
    return out


def test_file_tokenizer_encodes_and_lists_the_vocabulary_as_autotokenizer(tok_dir):
    from transformers import AutoTokenizer

    full = AutoTokenizer.from_pretrained(tok_dir)
    assert file_tokenizer_problem(tok_dir) is None
    light = load_tokenizer(str(tok_dir), chat_template=False)
    assert isinstance(light, FileTokenizer)
    for text in TEXTS:
        assert light.encode(text, add_special_tokens=False) == full.encode(text, add_special_tokens=False), text
    assert light.get_vocab() == full.get_vocab()
    with pytest.raises(ValueError, match="without special tokens"):
        light.encode("x", add_special_tokens=True)


def test_autotokenizer_where_the_file_alone_could_differ(tok_dir, tmp_path):
    cases = {
        "rebuilt": {"config": lambda c: c.update(tokenizer_class="Qwen2Tokenizer")},
        "missing special": {"config": lambda c: c.update(extra_special_tokens=["<|im_start|>", "<|tool|>"])},
        "padding": {
            "tokenizer": lambda t: t.update(
                padding={
                    "strategy": "BatchLongest",
                    "direction": "Left",
                    "pad_to_multiple_of": None,
                    "pad_id": 0,
                    "pad_type_id": 0,
                    "pad_token": "<|endoftext|>",
                }
            )
        },
        "split special": {"config": lambda c: c.update(split_special_tokens=True)},
    }
    for name, edits in cases.items():
        folder = variant(tok_dir, tmp_path / name.replace(" ", "_"), **edits)
        assert file_tokenizer_problem(folder) is not None, name
        assert not isinstance(load_tokenizer(str(folder), chat_template=False), FileTokenizer), name
    assert "no local tokenizer.json" in file_tokenizer_problem(tmp_path / "absent")
    # a chat prompt is rendered by transformers' template code, whatever the files
    assert not isinstance(load_tokenizer(str(tok_dir), chat_template=True), FileTokenizer)


def test_which_runs_render_a_chat_prompt():
    stepwise = TeacherOnlyParams(num_responses=1, temperature=0.0, seed=0, stepwise=True)
    plain = TeacherOnlyParams(num_responses=1, temperature=0.0, seed=0)
    assert not needs_chat_template(stepwise) and not stepwise.chat_prompts
    assert needs_chat_template(plain) and plain.chat_prompts
    assert not needs_chat_template(SkdParams(seed=0)) and not SkdParams(seed=0).chat_prompts
    assert needs_chat_template(SkdParams(seed=0, compat="paper"))
    assert needs_chat_template(SkdTokensParams(seed=0))


def test_released_mode_start_up_imports_neither_transformers_nor_torch(tok_dir):
    """The point of FileTokenizer: the synth command's start-up (4-5 s of importing on an idle core)."""
    code = (
        f"import sys; from motab.synthesis import run; tok = run.load_tokenizer({str(tok_dir)!r}, False); "
        "tok.encode('1 + 1', add_special_tokens=False); "
        "print(sorted(m for m in ('transformers', 'torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]", out.stderr

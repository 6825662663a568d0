"""The synthesis client's tokenizer, without importing transformers where it is not needed.

`from transformers import AutoTokenizer` imports torch and most of transformers: 4-5 s of a
synthesis run's start on an idle core (8-12 s on loaded ones), more than the whole synthesis loop
of a 100-problem toy run. The released-mode step methods (MOTAB, SKD, stepwise teacher-only) use
the tokenizer only to count tokens (`encode`) and to compare vocabularies, never for a chat
template, so they get `FileTokenizer`: the checkpoint's tokenizer.json loaded by the `tokenizers`
library, which is the object transformers itself wraps for these checkpoints.

It is used only where transformers would encode with exactly that object, unchanged
(`file_tokenizer_problem` names the first reason it would not); anything else, and every run that
renders a chat prompt, loads AutoTokenizer as before.
"""

from __future__ import annotations

import json
from pathlib import Path

# tokenizer_config classes that transformers (v5) builds by loading tokenizer.json as it is;
# others (e.g. Qwen2Tokenizer) rebuild the pipeline in Python, so their encodings are theirs.
AS_IS_CLASSES = {None, "TokenizersBackend", "PreTrainedTokenizerFast"}
SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _token_strings(value) -> list[str]:
    """The token strings of a tokenizer_config entry: a string, an AddedToken dict, or a list of them."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [value["content"]] if "content" in value else []
    if isinstance(value, list):
        return [s for v in value for s in _token_strings(v)]
    return []


def file_tokenizer_problem(folder: str | Path) -> str | None:
    """Why tokenizer.json alone would not encode as AutoTokenizer does (None: it would)."""
    folder = Path(folder)
    tok_file, cfg_file = folder / "tokenizer.json", folder / "tokenizer_config.json"
    if not tok_file.is_file() or not cfg_file.is_file():
        return "no local tokenizer.json and tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    raw = json.loads(tok_file.read_text(encoding="utf-8"))
    if cfg.get("tokenizer_class") not in AS_IS_CLASSES:
        return f"tokenizer_class {cfg.get('tokenizer_class')} is rebuilt by transformers"
    if cfg.get("split_special_tokens") or cfg.get("clean_up_tokenization_spaces"):
        return "split_special_tokens or clean_up_tokenization_spaces is set"
    if raw.get("padding") is not None or raw.get("truncation") is not None:
        return "tokenizer.json sets padding or truncation"
    added = {t["content"] for t in raw.get("added_tokens") or []}
    # transformers adds any special or declared token the file lacks; then the encodings differ
    wanted = [s for key in SPECIAL_KEYS for s in _token_strings(cfg.get(key))]
    wanted += _token_strings(cfg.get("extra_special_tokens")) + _token_strings(cfg.get("additional_special_tokens"))
    wanted += _token_strings(list((cfg.get("added_tokens_decoder") or {}).values()))
    missing = sorted(set(wanted) - added)
    return f"tokens {missing[:3]} are not in tokenizer.json" if missing else None


class FileTokenizer:
    """tokenizer.json through the `tokenizers` library: the two calls the step methods make."""

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer

        self.name_or_path = str(folder)
        self._tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        if add_special_tokens:  # the file's post-processor may differ from what transformers sets up
            raise ValueError("FileTokenizer encodes without special tokens only")
        return self._tok.encode(text, add_special_tokens=False).ids

    def get_vocab(self) -> dict[str, int]:
        return self._tok.get_vocab(with_added_tokens=True)


def load_tokenizer(name: str, chat_template: bool):
    """FileTokenizer where it encodes as AutoTokenizer would and no chat prompt is rendered;
    AutoTokenizer otherwise."""
    if not chat_template and file_tokenizer_problem(name) is None:
        return FileTokenizer(name)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)

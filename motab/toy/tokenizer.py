"""The toy tokenizer: byte-level BPE trained on the toy corpus, with Qwen's chat tokens.

Byte-level with Qwen2/Qwen3's own pre-tokenizer (NFC, then their Split regex, one digit per piece),
so any text, real MATH-500 LaTeX included, round-trips and text splits into pieces where Qwen's
does. That matters to the step methods: Qwen's regex keeps a step's ".\n\n" one piece whatever
follows it, so the tokens of a context that ends at a step boundary are a prefix of the tokens of
the whole text (GPT-2's byte-level regex merges a trailing "\n\n" differently from one followed by
text, and a model trained on whole texts then continues such a context badly). The chat template
is Qwen2.5's (default system prompt included), which is what LLaMA-Factory's `qwen` template
produces, so SFT data and `apply_chat_template` prompts agree token for token.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from motab.commandline import command_parser
from motab.jsonio import read_jsonl

if TYPE_CHECKING:  # transformers is imported where a tokenizer is built (slow to import)
    from transformers import PreTrainedTokenizerFast

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_TOKENS = ["<think>", "</think>"]
# Qwen2's and Qwen3's pre-tokenizer split (their tokenizer.json), applied before the byte mapping
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# `gpt2`: GPT-2's byte-level split with single digits, the toy's first pre-tokenizer; the synthesis
# golden tests' checkpoints were built on it (tests/golden_models.py), so it stays selectable
PRE_TOKENIZERS = ("qwen", "gpt2")

CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def chat_text(question: str, answer: str | None = None) -> str:
    """The exact text the chat template renders for one user turn (and the reply, if given)."""
    text = f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    return text if answer is None else text + answer + "<|im_end|>\n"


def _pre_tokenizer(name: str):
    if name == "qwen":
        split = pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False)
        return pre_tokenizers.Sequence(
            [split, pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)]
        )
    if name == "gpt2":
        return pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
    raise ValueError(f"pre_tokenizer: expected one of {PRE_TOKENIZERS}, found {name!r}")


def train_tokenizer(
    texts: list[str], vocab_size: int, out_dir: str | Path, pre_tokenizer: str = "qwen"
) -> PreTrainedTokenizerFast:
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    if pre_tokenizer == "qwen":
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = _pre_tokenizer(pre_tokenizer)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens(THINK_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out_dir))
    return fast


def main(argv: list[str]) -> int:
    parser = command_parser(
        "toy-tokenizer",
        __doc__,
        "motab toy-tokenizer --problems results/toy/data/problems.jsonl --vocab-size 512 --output results/toy/models/tokenizer",
    )
    parser.add_argument("--problems", required=True, help="problems.jsonl (train split) to train on")
    parser.add_argument("--vocab-size", type=int, required=True)
    parser.add_argument("--output", required=True, help="folder for the tokenizer files")
    args = parser.parse_args(argv)
    from motab.toy.pretrain import released_context  # the raw form the models are also trained on

    rows = read_jsonl(args.problems)
    texts = [chat_text(row["input"], row["solution"]) for row in rows]
    texts += [released_context(row["input"], row["solution"], k=len(row["solution"]))[0] for row in rows]
    tok = train_tokenizer(texts, args.vocab_size, args.output)
    print(f"tokenizer with {len(tok)} tokens -> {args.output}")
    return 0

"""The toy tokenizer: byte-level BPE trained on the toy corpus, with Qwen's chat tokens.

Byte-level (like Qwen's) so any text, real MATH-500 LaTeX included, round-trips; digits are
split one by one so arithmetic stays learnable. The chat template is Qwen2.5's (default system
prompt included), which is what LLaMA-Factory's `qwen` template produces, so SFT data and
`apply_chat_template` prompts agree token for token.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from motab.commandline import command_parser
from motab.jsonio import read_jsonl

if TYPE_CHECKING:  # transformers is imported where a tokenizer is built (slow to import)
    from transformers import PreTrainedTokenizerFast

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_TOKENS = ["<think>", "</think>"]

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


def train_tokenizer(texts: list[str], vocab_size: int, out_dir: str | Path) -> PreTrainedTokenizerFast:
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
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
    rows = read_jsonl(args.problems)
    texts = [chat_text(row["input"], row["solution"]) for row in rows]
    tok = train_tokenizer(texts, args.vocab_size, args.output)
    print(f"tokenizer with {len(tok)} tokens -> {args.output}")
    return 0

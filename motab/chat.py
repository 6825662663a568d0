"""Prompts built with each model's own chat template."""

from __future__ import annotations

import re

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_TRAILING_OPEN_THINK = re.compile(r"<think>\s*$")


def build_prompt(
    tokenizer, question: str, system: str | None = None, enable_thinking: bool | None = None, close_think: bool = False
) -> str:
    """The generation prompt for one user turn, rendered by the tokenizer's chat template.

    enable_thinking is passed to the template only when not None (templates without the flag
    ignore it anyway). close_think closes an unclosed trailing `<think>` as
    `<think>\\n\\n</think>\\n\\n` (Qwen3's own non-thinking form), for reasoning-distilled bases that
    always open a think block; a prompt that does not end in an open `<think>` is unchanged.
    """
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": question})
    kwargs = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
    if close_think and _TRAILING_OPEN_THINK.search(text):
        text = _TRAILING_OPEN_THINK.sub("", text) + _THINK_OPEN + "\n\n" + _THINK_CLOSE + "\n\n"
    return text

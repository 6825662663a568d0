"""Problems whose prompt and generation budget do not fit the model's context: named, not fatal.

SGLang (and the embedded server) refuse a request whose prompt + max_new_tokens reaches the context
length, so one over-long problem once failed its whole request with a 400 naming neither the problem
nor its line, and the job lost everything it had generated. Each problem is now checked before it is
sent, as the study's `eval.over_long` says:

- skip (default): the problem is not sent; its row holds n empty responses (graded wrong, so the
  accuracy keeps every problem in its denominator) and says why;
- truncate: its max_tokens is cut to what fits (context - prompt - 1); a prompt that alone does not
  fit is skipped.

Either way the problem is named (id, file:line) in the log, its responses row and the eval JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("skip", "truncate")


@dataclass(frozen=True)
class Budget:
    """What one problem is sent with: its max_tokens, or None when it is skipped, and why."""

    max_tokens: int | None
    note: str | None = None  # None: the problem fits as configured

    def record(self, path: str, line: int) -> dict | None:
        """The `over_long` entry of the problem's responses row (None when it fits)."""
        if self.note is None:
            return None
        action = "skipped" if self.max_tokens is None else "truncated"
        entry = {"action": action, "file": str(path), "line": line, "reason": self.note}
        return entry | ({"max_tokens": self.max_tokens} if self.max_tokens is not None else {})


def context_length(model: str, override: int = 0) -> int:
    """The context length the server uses: `override` (SGLang's --context-length), else the model
    config's max_position_embeddings (0: unknown, nothing is checked)."""
    if override:
        return override
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model)
    return int(getattr(config, "max_position_embeddings", 0) or 0)


def budget(prompt_tokens: int, max_tokens: int, context: int, mode: str) -> Budget:
    """One problem's Budget under SGLang's rule (prompt + max_new_tokens must stay below the context)."""
    if not context or prompt_tokens + max_tokens < context:
        return Budget(max_tokens)
    over = f"prompt of {prompt_tokens} tokens + max_tokens {max_tokens} reaches the context length {context}"
    room = context - prompt_tokens - 1
    if mode == "truncate" and room >= 1:
        return Budget(room, f"{over}; max_tokens cut to {room}")
    return Budget(None, f"{over}; skipped")


def budgets(tokenizer, prompts: list[str], max_tokens: int, context: int, mode: str) -> list[Budget]:
    """The Budget of every prompt (tokenized as the server tokenizes text: no special tokens added)."""
    if not context:
        return [Budget(max_tokens)] * len(prompts)
    return [
        budget(len(tokenizer(p, add_special_tokens=False)["input_ids"]), max_tokens, context, mode) for p in prompts
    ]


def is_context_refusal(message: str) -> bool:
    """A server's 400 about the context length (SGLang's and the embedded server's wording)."""
    return "context length" in message.lower()

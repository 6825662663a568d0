"""The model side of the embedded server: a checkpoint, its tokenizer, and batched generation.

`Engine.run(rows)` generates for the rows of one request, in chunks of `max_batch_size`, each chunk
in three phases: prefill (one forward pass over the left-padded prompts, prompt logprobs read off
its logits), decode (one token per live row per step, finished rows dropped from the batch and the
KV cache) and text (decode the output ids, cut a matched stop). Sampling and logprob semantics are
SGLang's (server.py's docstring). Not thread-safe: the server's one model thread calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from motab.serving import limits
from motab.serving.request import Row, RowResult, is_int, model_sampling_defaults


class Codec:
    """The tokenizer side of a model: what the protocols need to parse and format a request."""

    def __init__(self, model_dir: str, tokenizer: Any, vocab_size: int, max_length: int):
        self.model_dir = str(model_dir)
        self.served_model_name = self.model_dir  # SGLang's default --served-model-name: the model path
        self.sampling_defaults = model_sampling_defaults(model_dir)
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.max_length = max_length  # the context length; 0 when the config gives none

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])


@dataclass
class _Batch:
    """One chunk's decode state. `live` maps batch rows of the cache to request rows; finished rows
    are dropped from the batch (and the cache) so the remaining ones decode faster."""

    rows: list[Row]
    results: list[RowResult]
    lengths: list[int]
    gens: list
    active: list[bool]
    live: list[int]
    mask: Any
    positions: Any
    cache: Any
    last: Any = None  # float32 logits [len(live), V] of the next token


class Engine(Codec):
    """Loads the checkpoint once; `run(rows)` generates for a batch of rows (not thread-safe)."""

    def __init__(self, model_dir: str, max_batch_size: int = 64):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        self.model.eval()
        config = self.model.config
        super().__init__(
            model_dir, tokenizer, int(config.vocab_size), int(getattr(config, "max_position_embeddings", 0) or 0)
        )
        self.max_batch_size = max_batch_size
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        eos: set[int] = set()
        for source in (
            tokenizer.eos_token_id,
            getattr(self.model.generation_config, "eos_token_id", None),
            getattr(config, "eos_token_id", None),
        ):
            if isinstance(source, int):
                eos.add(source)
            elif isinstance(source, (list, tuple)):
                eos.update(int(x) for x in source)
        self.eos_ids = eos

    def run(self, rows: list[Row]) -> list[RowResult]:
        out: list[RowResult] = []
        for start in range(0, len(rows), self.max_batch_size):
            out.extend(self._run_batch(rows[start : start + self.max_batch_size]))
        return out

    def _run_batch(self, rows: list[Row]) -> list[RowResult]:
        with self.torch.inference_mode():
            batch = self._prefill(rows)
            self._decode(batch, max(r.sampling.max_new_tokens for r in rows))
        for row, res in zip(rows, batch.results):
            res.text = self._final_text(row, res)
        return batch.results

    # -- phase 1: prefill
    def _prefill(self, rows: list[Row]) -> _Batch:
        """Forward the left-padded prompts once; fill prompt logprobs; the batch ready to decode."""
        torch = self.torch
        from transformers import DynamicCache

        lengths = [len(r.input_ids) for r in rows]
        L = max(lengths)
        ids = torch.full((len(rows), L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), L), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, L - lengths[i] :] = torch.tensor(r.input_ids, dtype=torch.long)
            mask[i, L - lengths[i] :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        need_input = [r.return_logprob and r.logprob_start_len < lengths[i] - 1 for i, r in enumerate(rows)]
        batch = _Batch(
            rows=rows,
            results=[RowResult(output_ids=[], text="", finish_reason={}) for _ in rows],
            lengths=lengths,
            gens=[torch.Generator().manual_seed(r.seed) for r in rows],
            active=[],
            live=list(range(len(rows))),
            mask=mask,
            positions=positions,
            cache=DynamicCache(),
        )
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=batch.cache,
            use_cache=True,
            logits_to_keep=0 if any(need_input) else 1,
        )
        logits = out.logits.float()
        for i, r in enumerate(rows):
            if r.return_logprob:
                self._prompt_logprobs(r, batch.results[i], logits[i], L - lengths[i], need_input[i])
        batch.last = logits[:, -1, :]
        del out, logits
        batch.active = [r.sampling.max_new_tokens > 0 for r in rows]
        for i, res in enumerate(batch.results):
            if not batch.active[i]:
                res.finish_reason = {"type": "length", "length": 0}
        return batch

    def _prompt_logprobs(self, r: Row, res: RowResult, logits, pad: int, need: bool) -> None:
        """Prompt logprobs in SGLang's layout: from logprob_start_len, the first entry None."""
        start = r.logprob_start_len
        res.input_ids_from_start = list(r.input_ids[start:])
        res.input_logprobs = [None]
        res.input_top = [None]
        if not need:
            return
        # logits at padded index pad + j - 1 predict prompt token j, j in start+1 .. len-1
        lp = self.torch.log_softmax(logits[pad + start : pad + len(r.input_ids) - 1], dim=-1)
        targets = self.torch.tensor(r.input_ids[start + 1 :], dtype=self.torch.long)
        res.input_logprobs += lp.gather(-1, targets[:, None])[:, 0].tolist()
        if r.top_logprobs_num > 0:
            res.input_top += top_many(self.torch, lp, r.top_logprobs_num)
        else:
            res.input_top += [None] * lp.shape[0]

    # -- phase 2: decode
    def _decode(self, batch: _Batch, max_new: int) -> None:
        """One token per live row per step until every row has finished."""
        torch = self.torch
        want_lp = any(r.return_logprob for r in batch.rows)
        for _step in range(max_new):
            limits.tick(self)  # /health's progress; stops here once the client has gone
            if not any(batch.active[i] for i in batch.live):
                break
            chosen = sample_tokens(
                torch,
                batch.last,
                [batch.rows[i] for i in batch.live],
                [batch.gens[i] for i in batch.live],
                [batch.active[i] for i in batch.live],
                self.pad_id,
            )
            lps = torch.log_softmax(batch.last, dim=-1) if want_lp else None
            for b, i in enumerate(batch.live):
                if batch.active[i]:
                    self._append(batch, i, chosen[b], lps[b] if lps is not None else None)
            keep = [b for b, i in enumerate(batch.live) if batch.active[i]]
            if not keep:
                break
            self._step(batch, chosen, keep)

    def _append(self, batch: _Batch, i: int, tok: int, lps) -> None:
        """Record row i's new token (and its logprobs); finish the row on a stop or its length."""
        r, res = batch.rows[i], batch.results[i]
        res.output_ids.append(tok)
        if r.return_logprob:
            res.output_logprobs.append(float(lps[tok]))
            if r.top_logprobs_num > 0:
                res.output_top.append(top_many(self.torch, lps[None, :], r.top_logprobs_num)[0])
        s = r.sampling
        hit = stop_string_hit(self.decode(res.output_ids, s.skip_special_tokens), s.stop) if s.stop else None
        if tok in s.stop_token_ids or (not s.ignore_eos and tok in self.eos_ids):
            res.finish_reason = {"type": "stop", "matched": tok}
        elif hit is not None:
            res.finish_reason = {"type": "stop", "matched": hit[0]}
        elif len(res.output_ids) >= s.max_new_tokens or (
            self.max_length and batch.lengths[i] + len(res.output_ids) >= self.max_length
        ):
            res.finish_reason = {"type": "length", "length": len(res.output_ids)}
        else:
            return
        batch.active[i] = False

    def _step(self, batch: _Batch, chosen: list[int], keep: list[int]) -> None:
        """Drop finished rows from the batch and cache, then forward the chosen tokens."""
        torch = self.torch
        next_ids = torch.tensor(chosen, dtype=torch.long)[:, None]
        if len(keep) < len(batch.live):
            index = torch.tensor(keep, dtype=torch.long)
            batch.cache.batch_select_indices(index)
            batch.mask, batch.positions, next_ids = batch.mask[index], batch.positions[index], next_ids[index]
            batch.live = [batch.live[b] for b in keep]
        batch.mask = torch.cat([batch.mask, torch.ones((len(batch.live), 1), dtype=torch.long)], dim=1)
        pos = batch.positions[:, -1:] + 1
        batch.positions = torch.cat([batch.positions, pos], dim=1)
        out = self.model(
            input_ids=next_ids, attention_mask=batch.mask, position_ids=pos, past_key_values=batch.cache, use_cache=True
        )
        batch.last = out.logits[:, -1, :].float()

    # -- phase 3: text
    def _final_text(self, r: Row, res: RowResult) -> str:
        """The output text as SGLang returns it: a matched stop token or string cut unless no_stop_trim."""
        s = r.sampling
        matched = res.finish_reason.get("matched")
        if s.no_stop_trim:
            return self.decode(res.output_ids, s.skip_special_tokens)
        if res.finish_reason.get("type") == "stop" and is_int(matched):
            return self.decode(res.output_ids[:-1], s.skip_special_tokens)
        text = self.decode(res.output_ids, s.skip_special_tokens)
        if isinstance(matched, str):
            return text[: text.find(matched)] if matched in text else text
        return text


def sample_tokens(torch: Any, logits, rows: list[Row], gens: list, active: list[bool], pad_id: int) -> list[int]:
    """Next token per row from raw logits [B, V] (float32), using each row's generator: greedy at
    temperature 0 or top_k 1, else temperature, top-k, then top-p, one uniform draw per row."""
    chosen: list[int] = []
    for i, row in enumerate(rows):
        if not active[i]:
            chosen.append(pad_id)
            continue
        s = row.sampling
        if s.temperature <= 1e-6 or s.top_k == 1:
            chosen.append(int(torch.argmax(logits[i]).item()))
            continue
        scaled = logits[i] / s.temperature
        if 0 < s.top_k < scaled.shape[-1]:
            kth = torch.topk(scaled, s.top_k).values[-1]
            scaled = scaled.masked_fill(scaled < kth, float("-inf"))
        probs = torch.softmax(scaled.double(), dim=-1)
        if s.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            cum = torch.cumsum(sorted_p, dim=-1)
            drop = (cum - sorted_p) > s.top_p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        cdf = torch.cumsum(probs, dim=-1)
        u = torch.rand(1, generator=gens[i], dtype=torch.float64) * cdf[-1]
        index = int(torch.searchsorted(cdf, u).clamp(max=probs.shape[-1] - 1).item())
        while probs[index] <= 0 and index > 0:  # never land on a masked token through rounding
            index -= 1
        chosen.append(index)
    return chosen


def top_many(torch: Any, logprobs, k: int) -> list[list[tuple[float, int]]]:
    """Top-k (logprob, token id) of each row of [P, V] logprobs, most likely first: one topk
    and one conversion for all positions (per-position calls dominated scoring time)."""
    values, ids = torch.topk(logprobs, min(k, logprobs.shape[-1]), dim=-1)  # sorted descending
    return [list(zip(v, t)) for v, t in zip(values.tolist(), ids.tolist())]


def stop_string_hit(text: str, stops: list[str]) -> tuple[str, int] | None:
    """The stop string found earliest in `text` and its position, or None."""
    best: tuple[str, int] | None = None
    for stop in stops:
        pos = text.find(stop)
        if pos != -1 and (best is None or pos < best[1]):
            best = (stop, pos)
    return best

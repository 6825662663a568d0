"""Embedded inference server: an HF checkpoint behind the subset of SGLang's protocol we use.

`motab serve --model DIR [--host 127.0.0.1] [--port 0] [--port-file F] [--threads N]
[--seed 0] [--max-batch-size 64]`

Endpoints (field names as in SGLang's `GenerateReqInput` and its tokenizer manager's meta_info):
  GET  /health, /get_model_info, /v1/models
  POST /generate                (SGLang native: text | input_ids, sampling_params, return_logprob,
                                 top_logprobs_num, logprob_start_len (each of these three once or
                                 as a per-prompt list), return_text_in_logprobs, rid,
                                 sampling_params.no_stop_trim; refused with a 400 that names
                                 them: stream, token_ids_logprob, sampling_params.min_new_tokens > 0)
  POST /v1/completions, /v1/chat/completions   (OpenAI shapes, with logprobs and usage)

Semantics copied from SGLang (checked in its source, not its code):
- `logprob_start_len` defaults to -1, meaning "no prompt logprobs" (internally len(prompt) - 1).
- `input_token_logprobs` covers prompt positions logprob_start_len .. end, as
  [logprob, token_id, text|None] triples; the first entry's logprob is always None (SGLang pads
  it: the logits of position start-1 are not computed), so entry j > 0 is
  log p(prompt[start + j] | prompt[: start + j]). `input_top_logprobs` likewise, first entry None.
- finish_reason is {"type": "stop", "matched": token_id | stop_string} or
  {"type": "length", "length": max_new_tokens}; a matched stop string is cut from `text`
  (output_ids keep every generated token); a matched stop token is left out of `text`.
- With `n` > 1 in sampling_params, each prompt is repeated n times, prompt-major.
- Logprobs are log_softmax of the raw logits (temperature 1, before top-p/top-k). SGLang returns
  exactly this for prompt positions and for greedy decoding; for sampled tokens at temperature
  != 1 it returns the temperature-scaled logprob unless started with
  SGLANG_RETURN_ORIGINAL_LOGPROB=1. Teacher scoring (max_new_tokens=0) is unaffected.

Determinism: one worker thread runs one request at a time; a request is its own batch (split
into --max-batch-size chunks in order). Each row samples from its own generator seeded by
(sampling_seed, prompt ids, occurrence), where occurrence counts the earlier rows of the same
request with the same seed and prompt (the n copies, or a prompt listed twice). A row's draws
therefore never depend on which other rows share its request (as with SGLang's per-request
`sampling_seed` under deterministic inference). The same request gives the same bytes.

What is refused (400 naming the field), what /health reports and how a disconnected client's
generation stops: limits.py (`--max-rows`, `--stall-timeout-s`).

This module is the command (`main`); the parts are: request.py (rows, sampling, seeds),
protocol_sglang.py and protocol_openai.py (body -> rows, results -> response), engine.py (the
model: prefill, decode, text) and app.py (routes, the model worker, listening).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from motab.commandline import command_parser
from motab.serving import limits
from motab.serving.app import serve
from motab.serving.engine import Engine


def main(argv: list[str]) -> int:
    """`motab serve`: load the model, listen until interrupted; 2 when --model is not a folder."""
    parser = command_parser(
        "serve", __doc__.split("\n\n")[0], "motab serve --model results/toy/models/toy-teacher --port 30000"
    )
    parser.add_argument("--model", required=True, help="HF checkpoint folder (model + tokenizer)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", default=None, help="write the bound port here")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of requests that give none")
    parser.add_argument(
        "--served-model-name", default=None, help="the OpenAI `model` name served (default: --model, as SGLang)"
    )
    parser.add_argument("--max-batch-size", type=int, default=64, help="rows per forward pass")
    parser.add_argument(
        "--max-rows",
        type=int,
        default=limits.Limits.max_rows,
        help="refuse requests of more rows (prompts x n) than this",
    )
    parser.add_argument(
        "--stall-timeout-s",
        type=float,
        default=limits.Limits.stall_s,
        help="/health says dead after this long without a decode step",
    )
    args = parser.parse_args(argv)
    if args.max_batch_size < 1:
        parser.error("--max-batch-size must be at least 1")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.model).is_dir():
        print(f"motab serve: --model {args.model}: not a folder", file=sys.stderr)
        return 2
    engine = Engine(args.model, max_batch_size=args.max_batch_size)
    print(
        f"loaded {args.model} ({sum(p.numel() for p in engine.model.parameters())} parameters, "
        f"torch threads {torch.get_num_threads()})",
        flush=True,
    )
    try:
        asyncio.run(
            serve(
                engine,
                args.host,
                args.port,
                args.port_file,
                args.seed,
                limits.Limits(max_rows=args.max_rows, stall_s=args.stall_timeout_s),
                args.served_model_name,
            )
        )
    except KeyboardInterrupt:
        pass
    return 0

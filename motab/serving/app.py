"""The embedded server's HTTP side: routes, the model worker, error bodies, the listening loop.

Every request's parsing (it tokenizes) and generation run on the one model thread
(limits.Worker), so a huge prompt never blocks /health and the tokenizer is never used by two
threads at once. A refusal is a 400 whose message names the field; a failed generation a 500.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from motab.serving import limits
from motab.serving.engine import Engine
from motab.serving.limits import RequestError
from motab.serving.protocol_openai import format_openai, parse_openai
from motab.serving.protocol_sglang import format_generate, parse_generate


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


class _Handlers:
    """The routes of one server: its engine, model worker and default sampling seed."""

    def __init__(self, engine: Engine, worker: limits.Worker, seed: int):
        import orjson
        from aiohttp import web

        self.web, self.orjson = web, orjson
        self.engine, self.worker, self.seed = engine, worker, seed

    def error(self, status: int, message: str):
        return self.web.json_response({"error": {"message": message, "code": status}}, status=status, dumps=_dump)

    def fast_json(self, obj: Any):
        # orjson: scoring answers carry top-k triples for every position (megabytes per round);
        # the standard library's encoder spent more time on them than the model did.
        return self.web.Response(body=self.orjson.dumps(obj), content_type="application/json")

    async def health(self, _request):
        status, body = self.worker.health()
        return self.web.json_response(body, status=status, dumps=_dump)

    async def model_info(self, _request):
        return self.web.json_response(
            {"model_path": self.engine.model_dir, "tokenizer_path": self.engine.model_dir, "is_generation": True},
            dumps=_dump,
        )

    async def models(self, _request):
        return self.web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.engine.served_model_name,
                        "object": "model",
                        "created": 0,
                        "owned_by": "motab",
                        "max_model_len": self.engine.max_length or None,
                    }
                ],
            },
            dumps=_dump,
        )

    async def _generate(self, request, rows):
        """(results, None) or (None, the 500 response) for rows parsed from the request."""
        try:
            return await self.worker.run(request, self.engine.run, rows, rows=len(rows)), None
        except Exception as exc:  # noqa: BLE001 - report any generation failure as a 500
            return None, self.error(500, f"generation failed: {type(exc).__name__}: {exc}")

    async def generate(self, request):
        try:
            body = limits.parse_body(await request.read())
            rows, batch = await self.worker.run(request, parse_generate, self.engine, body, self.seed)
        except RequestError as exc:
            return self.error(400, str(exc))
        results, failed = await self._generate(request, rows)
        if failed is not None:
            return failed
        out = format_generate(self.engine, body, rows, results)
        return self.fast_json(out if batch else out[0])

    def openai(self, chat: bool):
        async def handler(request):
            try:
                body = limits.parse_body(await request.read())
                if isinstance(body, dict) and body.get("stream"):
                    raise RequestError("stream: streaming is not supported by the embedded server")
                rows, prompt_lens = await self.worker.run(request, parse_openai, self.engine, body, self.seed, chat)
            except RequestError as exc:
                return self.error(400, str(exc))
            results, failed = await self._generate(request, rows)
            if failed is not None:
                return failed
            return self.fast_json(format_openai(self.engine, body, rows, results, prompt_lens, chat))

        return handler


def build_app(
    engine: Engine, seed: int = 0, request_limits: limits.Limits | None = None, served_model_name: str | None = None
):
    """The aiohttp application; starts the model worker (stopped at the app's cleanup)."""
    from aiohttp import web

    engine.served_model_name = served_model_name or engine.model_dir
    engine.limits = request_limits or limits.Limits()
    worker = engine.worker = limits.Worker(engine.limits)
    routes = _Handlers(engine, worker, seed)
    worker.start()
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_get("/health", routes.health)
    app.router.add_get("/get_model_info", routes.model_info)
    app.router.add_get("/v1/models", routes.models)
    app.router.add_post("/generate", routes.generate)
    app.router.add_post("/v1/completions", routes.openai(chat=False))
    app.router.add_post("/v1/chat/completions", routes.openai(chat=True))

    async def on_cleanup(_app):
        worker.close()

    app.on_cleanup.append(on_cleanup)
    return app


async def serve(
    engine: Engine,
    host: str,
    port: int,
    port_file: str | None,
    seed: int,
    request_limits: limits.Limits | None = None,
    served_model_name: str | None = None,
) -> None:
    """Listen until cancelled; the bound port goes to `port_file` (port 0 picks a free one)."""
    from aiohttp import web

    runner = web.AppRunner(build_app(engine, seed, request_limits, served_model_name), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    if port_file:
        Path(port_file).write_text(f"{bound}\n")
    print(f"listening on http://{host}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

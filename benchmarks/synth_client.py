"""Throughput of the synthesis HTTP client against a server of known capacity.

    python benchmarks/synth_client.py [--delay-ms 20] [--capacity 16] [--requests 400]

Starts (in a subprocess) an aiohttp server on 127.0.0.1 whose /generate answers after a fixed
service delay, serving at most `capacity` requests at once (the rest queue), so its ceiling is
capacity / delay requests per second. Then prints requests/s of motab's async ServerClient with
1, 8 and 64 requests in flight, and of a single sequential worker (blocking urllib, one request
after the other), beside that ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PAYLOAD = {"input_ids": list(range(64)), "sampling_params": {"max_new_tokens": 8}}


def serve(port: int, delay_s: float, capacity: int) -> None:
    from aiohttp import web

    async def main():
        slots = asyncio.Semaphore(capacity)

        async def generate(request):
            await request.json()
            async with slots:
                await asyncio.sleep(delay_s)
            return web.json_response({"text": "ok", "output_ids": [1] * 8,
                                      "meta_info": {"completion_tokens": 8, "finish_reason": {"type": "length"}}})

        async def health(_request):
            return web.Response(text="OK")

        app = web.Application()
        app.router.add_post("/generate", generate)
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


async def async_rate(url: str, in_flight: int, requests: int) -> float:
    from motab.serving.client import ServerClient

    async with ServerClient(url, max_in_flight=in_flight) as client:
        await client.generate(PAYLOAD)  # connect once before timing
        start = time.perf_counter()
        await asyncio.gather(*(client.generate(PAYLOAD) for _ in range(requests)))
        return requests / (time.perf_counter() - start)


def sequential_rate(url: str, requests: int) -> float:
    body = json.dumps(PAYLOAD).encode()
    start = time.perf_counter()
    for _ in range(requests):
        req = urllib.request.Request(url + "/generate", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            json.loads(resp.read())
    return requests / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--capacity", type=int, default=16)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: run the server on this port
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.delay_ms / 1000, args.capacity)
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from motab.serving.launch import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--delay-ms", str(args.delay_ms),
                             "--capacity", str(args.capacity)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}"
        ceiling = args.capacity / (args.delay_ms / 1000)
        print(f"server: {args.delay_ms:.0f} ms per request, {args.capacity} at once -> ceiling {ceiling:.0f} req/s")
        few = max(20, args.requests // 10)
        rate = sequential_rate(url, few)
        print(f"  sequential worker (urllib)  : {rate:8.1f} req/s  ({rate / ceiling:6.1%} of ceiling)")
        for in_flight in (1, 8, 64):
            n = few if in_flight == 1 else args.requests
            rate = asyncio.run(async_rate(url, in_flight, n))
            bound = min(in_flight, args.capacity) / (args.delay_ms / 1000)
            print(f"  ServerClient, {in_flight:2d} in flight  : {rate:8.1f} req/s  ({rate / ceiling:6.1%} of ceiling, "
                  f"{rate / bound:6.1%} of min(in flight, capacity)/delay)")
    finally:
        proc.terminate()
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of the synthesis HTTP client against a server of known capacity.

    python perf/synth_client.py [--delay-ms 20] [--capacity 16] [--requests 800] [--repeats 5]

Starts (in a subprocess) an aiohttp server on 127.0.0.1 whose /generate takes a fixed service
time `delay` and serves at most `capacity` requests at once (the rest queue, first come first
served), so its capacity is capacity / delay requests per second. Then prints, as medians over
`repeats` runs, requests/s of motab's async ServerClient with 1, 8 and 64 requests in flight and
of the seed-style single worker (blocking urllib, one request after the other), each beside
its bound min(in flight, capacity) / delay, with the client's CPU time per request.

Two stubs are measured, to show where the seed's "70% of capacity" went:
  sleep     the first stub: a semaphore slot, then `asyncio.sleep(delay)`. Every service time
            overshoots the delay (the loop's 1 ms timer rounding, plus waiting for a busy core on a
            shared machine), and a slot only frees when its coroutine is resumed, so the server
            itself serves fewer than capacity / delay requests per second, whatever the client.
  schedule  a fixed-capacity server: each request is assigned to the slot that frees first and
            ends exactly `delay` after that slot's previous request ended (or after it arrived,
            if the slot was idle); the answer is sent when the loop next wakes. Late wake-ups delay
            an answer but never stretch the service, so saturated throughput is capacity / delay.
The stub reports its mean service time (start of service to the answer being sent), so a figure
below the bound can be told apart as the server's or the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PAYLOAD = {"input_ids": list(range(64)), "sampling_params": {"temperature": 0.0, "max_new_tokens": 8}}
ANSWER = {
    "text": "ok",
    "output_ids": [1] * 8,
    "meta_info": {"completion_tokens": 8, "finish_reason": {"type": "length"}},
}


def serve(port: int, delay_s: float, capacity: int, mode: str) -> None:
    from aiohttp import web

    async def main():
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(capacity)
        free_at = [0.0] * capacity  # schedule mode: when each slot next frees (loop time)
        served = {"n": 0, "service_s": 0.0}

        async def generate(request):
            await request.json()
            if mode == "sleep":
                async with slots:
                    start = loop.time()
                    await asyncio.sleep(delay_s)
            else:
                start = max(loop.time(), heapq.heappop(free_at))
                heapq.heappush(free_at, start + delay_s)
                await asyncio.sleep(start + delay_s - loop.time())
            served["n"] += 1
            served["service_s"] += loop.time() - start
            return web.json_response(ANSWER)

        async def stats(_request):
            out = dict(served, cpu_s=time.process_time() - served.get("cpu0", 0.0))
            served.update(n=0, service_s=0.0, cpu0=time.process_time())
            return web.json_response(out)

        async def health(_request):
            return web.Response(text="OK")

        app = web.Application()
        app.router.add_post("/generate", generate)
        app.router.add_get("/stats", stats)
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def server_service_ms(url: str) -> tuple[float, float]:
    """The stub's mean service time and CPU time per request (ms) since the last call."""
    with urllib.request.urlopen(url + "/stats", timeout=30) as resp:
        stats = json.loads(resp.read())
    n = max(stats["n"], 1)
    return 1000 * stats["service_s"] / n, 1000 * stats["cpu_s"] / n


async def async_rate(url: str, in_flight: int, requests: int) -> tuple[float, float]:
    """(requests/s, client CPU ms per request) of ServerClient with `in_flight` outstanding."""
    from motab.serving.client import ServerClient

    async with ServerClient(url, max_in_flight=in_flight) as client:
        await asyncio.gather(*(client.generate(PAYLOAD) for _ in range(in_flight)))  # open the connections
        server_service_ms(url)  # reset the stub's counters
        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client.generate(PAYLOAD) for _ in range(requests)))
        wall = time.perf_counter() - start
        return requests / wall, 1000 * (time.process_time() - cpu) / requests


def sequential_rate(url: str, requests: int) -> tuple[float, float]:
    """The seed's single worker: blocking urllib, a new connection per request."""
    body = json.dumps(PAYLOAD).encode()
    server_service_ms(url)
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(requests):
        req = urllib.request.Request(url + "/generate", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            json.loads(resp.read())
    wall = time.perf_counter() - start
    return requests / wall, 1000 * (time.process_time() - cpu) / requests


def measure(mode: str, args) -> list[tuple[str, float, float, float, float]]:
    """Rows (client, median req/s, bound req/s, client CPU ms/req, stub service ms, stub CPU ms/req)."""
    from motab.serving.launch import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            str(port),
            "--delay-ms",
            str(args.delay_ms),
            "--capacity",
            str(args.capacity),
            "--stub",
            mode,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    delay = args.delay_ms / 1000
    rows = []
    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"stub server ({mode}) did not start")
        url = f"http://127.0.0.1:{port}"
        few = max(20, args.requests // 20)
        cases = [("sequential worker (urllib)", 1, lambda: sequential_rate(url, few))]
        for in_flight in (1, 8, 64):
            n = few if in_flight == 1 else args.requests
            cases.append(
                (
                    f"ServerClient, {in_flight:2d} in flight",
                    in_flight,
                    lambda k=in_flight, n=n: asyncio.run(async_rate(url, k, n)),
                )
            )
        for name, in_flight, run in cases:
            rates, cpus, service, stub_cpus = [], [], [], []
            for _ in range(args.repeats):
                rate, cpu = run()
                served_ms, stub_cpu = server_service_ms(url)
                rates.append(rate)
                cpus.append(cpu)
                service.append(served_ms)
                stub_cpus.append(stub_cpu)
            rows.append(
                (
                    name,
                    statistics.median(rates),
                    min(in_flight, args.capacity) / delay,
                    statistics.median(cpus),
                    statistics.median(service),
                    statistics.median(stub_cpus),
                )
            )
    finally:
        proc.terminate()
        proc.wait()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--capacity", type=int, default=16)
    parser.add_argument("--requests", type=int, default=800, help="requests per run with 8 or 64 in flight")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stubs", default="sleep,schedule", help="comma-separated: sleep, schedule")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: run the stub on this port
    parser.add_argument("--stub", default="schedule", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.delay_ms / 1000, args.capacity, args.stub)
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    ceiling = args.capacity / (args.delay_ms / 1000)
    print(
        f"server: {args.delay_ms:g} ms per request, {args.capacity} at once -> capacity {ceiling:.0f} req/s; "
        f"medians over {args.repeats} runs"
    )
    for mode in args.stubs.split(","):
        print(f"stub '{mode}':")
        for name, rate, bound, cpu, service, stub_cpu in measure(mode, args):
            print(
                f"  {name:28s}: {rate:7.1f} req/s = {rate / bound:6.1%} of its bound {bound:5.0f} "
                f"({rate / ceiling:6.1%} of capacity); CPU per request: client {cpu:4.2f} ms, "
                f"stub {stub_cpu:4.2f} ms; stub service {service:5.2f} ms"
            )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())

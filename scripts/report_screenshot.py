"""Open a Snakemake report.html in headless Chromium, click through to a result, take a screenshot.

    python scripts/report_screenshot.py report.html shot.png --click Tables chart view:main

Drives Chromium over the DevTools protocol (websockets, no extra package): starts
`chromium --headless --remote-debugging-port=0`, loads the report, clicks the first visible
element whose text equals each --click label in turn (a switch's value such as `chart` of the
Tables' table | chart switch included; "view:TEXT" clicks the first button, the report's eye icon,
of the table row showing TEXT), waiting for it to appear, then saves a PNG
screenshot and prints the page's visible text and its images' natural sizes as JSON (a caller
checks that the chart rendered: an <img> with width > 0).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


CLICK_JS = """
(label) => {
  if (label.startsWith('view:')) {  // the first action (the "eye" button) of the row showing this text
    const text = label.slice(5);
    const rows = Array.from(document.querySelectorAll('tr')).filter(r => r.offsetParent !== null
                                                                     && r.innerText.includes(text));
    if (!rows.length) return false;
    const button = rows[0].querySelector('a, button, [role=button], svg');
    if (!button) return false;
    button.dispatchEvent(new MouseEvent('click', {bubbles: true})); return true;
  }
  // label: Snakemake's toggles are <label>s around hidden radio inputs (the table | chart switch)
  const nodes = Array.from(document.querySelectorAll('a, button, label, li, span, div, td, p'));
  const hit = nodes.find(n => n.offsetParent !== null && n.textContent.trim() === label
                         && Array.from(n.children).every(c => c.textContent.trim() !== label));
  if (!hit) return false;
  hit.scrollIntoView(); hit.click(); return true;
}
"""
STATE_JS = """
() => JSON.stringify({text: document.body.innerText,
  images: Array.from(document.images).filter(i => i.offsetParent !== null)
               .map(i => ({w: i.naturalWidth, h: i.naturalHeight, shown_w: i.width, src: i.src.slice(0, 40)}))})
"""


class Page:
    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params):
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, function: str, *args):
        expression = f"({function})({', '.join(json.dumps(a) for a in args)})"
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")


async def drive(
    ws_url: str, url: str, clicks: list[str], output: Path, width: int, height: int, timeout_s: float
) -> dict:
    import websockets

    async with websockets.connect(ws_url, max_size=2**28) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        await page.call(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
        )
        await page.call("Page.navigate", url=url)
        for label in clicks:
            deadline = time.monotonic() + timeout_s
            while not await page.evaluate(CLICK_JS, label):
                if time.monotonic() > deadline:
                    state = json.loads(await page.evaluate(STATE_JS))
                    raise RuntimeError(f"no visible element with text {label!r}; page text: {state['text'][:600]!r}")
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        shot = await page.call("Page.captureScreenshot", format="png")
        output.write_bytes(base64.b64decode(shot["data"]))
        return json.loads(await page.evaluate(STATE_JS))


def screenshot(
    report: Path,
    output: Path,
    clicks: list[str],
    width: int = 1400,
    height: int = 1000,
    timeout_s: float = 30.0,
    browser: str | None = None,
) -> dict:
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError(f"no browser found (looked for {', '.join(BROWSERS)})")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ws_url, deadline = None, time.monotonic() + timeout_s
            port_file = Path(profile) / "DevToolsActivePort"
            while ws_url is None:
                if proc.poll() is not None:
                    raise RuntimeError(f"{browser} exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
                if port_file.exists() and len(port_file.read_text().split()) >= 2:
                    port = port_file.read_text().split()[0]
                    import urllib.request

                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
                        targets = [t for t in json.load(response) if t.get("type") == "page"]
                    ws_url = targets[0]["webSocketDebuggerUrl"]
                elif time.monotonic() > deadline:
                    raise TimeoutError(f"{browser} gave no DevTools port in {timeout_s} s")
                else:
                    time.sleep(0.1)
            return asyncio.run(drive(ws_url, report.resolve().as_uri(), clicks, output, width, height, timeout_s))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--click", nargs="*", default=[], help="texts of the elements to click, in order")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    state = screenshot(args.report, args.output, args.click, args.width, args.height)
    print(json.dumps({"images": state["images"], "text": re.sub(r"\s+", " ", state["text"])[:400]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

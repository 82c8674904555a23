"""Headless Chromium driven over the DevTools protocol: open a page, wait until a script says it
is ready, click, read the DOM and take screenshots. `chromium --screenshot URL` alone cannot
click a tab, and a single-page app such as Prefect's UI renders long after the page loads."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

CHROMIUM = "chromium"  # Debian's package; Chrome's `google-chrome` takes the same flags
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",  # chromium picks a free port and writes it to DevToolsActivePort
]


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 1800, binary: str = CHROMIUM) -> None:
        path = shutil.which(binary)
        if path is None:
            raise FileNotFoundError(f"{binary} is not on PATH: install it (Debian: apt-get install chromium)")
        self._profile = Path(tempfile.mkdtemp(prefix="numerflow-chromium-"))
        window = f"--window-size={width},{height}"
        self._process = subprocess.Popen(
            [path, *FLAGS, f"--user-data-dir={self._profile}", window, "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        self._socket: ClientConnection | None = None

    def __enter__(self) -> Browser:
        port = self._devtools_port()
        pages = httpx.get(f"http://127.0.0.1:{port}/json", timeout=10).json()
        page = next(target for target in pages if target["type"] == "page")
        self._socket = connect(page["webSocketDebuggerUrl"], max_size=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._socket is not None:
            self._socket.close()
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        shutil.rmtree(self._profile, ignore_errors=True)

    def open(self, url: str, ready: str, timeout: float = 60) -> None:
        """Go to `url` and wait until the JavaScript expression `ready` is true."""
        self._call("Page.navigate", url=url)
        self.wait(ready, timeout)

    def wait(self, ready: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(ready):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page did not get ready in {timeout:.0f} s: {ready}")
            time.sleep(0.25)

    def evaluate(self, expression: str) -> Any:
        result = self._call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """What the window shows, as PNG."""
        data = self._call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._socket is not None, "use Browser as a context manager"
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:  # events of the page arrive in between; skip them
            message = json.loads(self._socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def _devtools_port(self, timeout: float = 30) -> int:
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self._process.returncode}")
            if port_file.is_file() and (text := port_file.read_text().split()):
                return int(text[0])
            time.sleep(0.1)
        raise TimeoutError(f"chromium did not open its DevTools port in {timeout:.0f} s")

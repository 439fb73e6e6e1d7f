"""Headless Chromium for the browser tests, driven over its DevTools pipe: no driver, no browser download.

`chromium --remote-debugging-pipe` reads DevTools commands (JSON, NUL-terminated) on its fd 3 and answers
on fd 4. That is all a test needs to open a page, wait until the page's own JavaScript has rendered what
a user would see, run a check in the page (an image's naturalWidth) and keep a screenshot.
The browser is Debian's `chromium`, installed by tools/install-chromium.sh where missing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = ROOT / "tools" / "install-chromium.sh"
NAMES = ("chromium", "chromium-browser", "google-chrome")
# Headless on a closed network: no sandbox (root in a container), no background fetches that fail offline.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--allow-file-access-from-files",
]


class BrowserError(AssertionError):
    """The browser failed, or a page never reached the state a test waits for."""


def find_chromium() -> str | None:
    for name in NAMES:
        if path := shutil.which(name):
            return path
    return None


def install_chromium(timeout: int = 900) -> tuple[str | None, str]:
    """(browser path, why not): Chromium on PATH, else what the project's install script gives."""
    if path := find_chromium():
        return path, ""
    try:
        proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"{INSTALL_SCRIPT.name} did not finish within {timeout} s"
    if proc.returncode != 0:
        return None, f"{INSTALL_SCRIPT.name} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
    return find_chromium(), ""


class Browser:
    """One headless Chromium with one page; use as a context manager (the browser is closed after)."""

    def __init__(self, executable: str, width: int = 1600, height: int = 1000, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="hecvl-chromium-")  # a fresh profile: nothing remembered
        cmd_read, cmd_write = os.pipe()  # commands: we write, the browser reads on its fd 3
        out_read, out_write = os.pipe()  # answers and events: the browser writes on its fd 4
        args = [executable, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe",
                f"--window-size={width},{height}", "about:blank"]
        self.proc = subprocess.Popen(  # bash, not sh: dash reads only one-digit descriptors in redirections
            ["bash", "-c", f'exec "$@" 3<&{cmd_read} 4>&{out_write}', "bash", *args],
            pass_fds=(cmd_read, out_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(cmd_read)
        os.close(out_write)
        self._write, self._read = cmd_write, out_read
        self._buffer = b""
        self._next_id = 0
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.page("Page.enable")
        self.resize(width, height)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for fd in (self._write, self._read):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)
        shutil.rmtree(self.profile, ignore_errors=True)

    # --- the DevTools protocol ----------------------------------------------------------------------
    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict:
        """One DevTools command; returns its result (events that arrive meanwhile are dropped)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise BrowserError(f"chromium did not answer within {self.timeout} s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium exited ({self.proc.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def page(self, method: str, params: dict[str, Any] | None = None) -> dict:
        return self.send(method, params, self.session)

    # --- what a test does with the page -------------------------------------------------------------
    def resize(self, width: int, height: int) -> None:
        self.page("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def goto(self, url: str) -> None:
        result = self.page("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.page("Runtime.evaluate",
                           {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression[:200]}: {details.get('exception', details).get('description')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 60.0) -> Any:
        """Poll a JavaScript expression until it is truthy; its value. Fails saying what never appeared."""
        deadline = time.monotonic() + timeout
        guarded = f"(async () => {{ try {{ return await ({expression}); }} catch (e) {{ return null; }} }})()"
        while True:  # errors count as "not yet": the page may be between documents or still loading
            value = self.evaluate(guarded)
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText.slice(0, 1500) : ''")
                raise BrowserError(f"{what} not seen within {timeout} s; the page shows:\n{text}")
            time.sleep(0.25)

    def text(self) -> str:
        return self.evaluate("document.body.innerText")

    def screenshot(self, path: Path) -> Path:
        data = self.page("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

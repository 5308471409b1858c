"""A real browser for the tests: Debian's Chromium, headless, driven through chromedriver with
the W3C WebDriver protocol (plain HTTP + JSON, no client library).  `make test` installs the
Debian packages `chromium` and `chromium-driver`; without them the tests using the fixture
fail, saying which binary is missing.

    from browser import browser   # the fixture (module scope: one Chromium per test module)

    def test_page(browser, ...):
        browser.get("http://127.0.0.1:%d/page" % port)
        ids = browser.wait_for("return window.done && window.ids", timeout=30)

Chromium runs with --no-sandbox (the tests run as root in CI, where its sandbox cannot start)
and a fresh profile directory of its own; chromedriver listens on a free loopback port.  Both
are stopped at the end, only the processes started here.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Optional

import pytest

from _redis_server import free_port, tool_env

CHROMIUM = os.environ.get("FRA_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = (os.environ.get("FRA_TEST_CHROMEDRIVER") or shutil.which("chromedriver")
                or "/usr/bin/chromedriver")
START_TIMEOUT = 30.0  # seconds for chromedriver to answer and Chromium to start


class WebDriverError(Exception):
    pass


class Browser:
    """One headless Chromium session."""

    def __init__(self) -> None:
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="fra-chromium-")
        self.log = os.path.join(self.profile, "chromedriver.log")
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, "--port=%d" % self.port, "--log-path=" + self.log],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env=tool_env())  # (not under make test-asan's preload)
        self.session: Optional[str] = None
        try:
            self._wait_ready()
            caps = {"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--no-first-run",
                             "--user-data-dir=" + os.path.join(self.profile, "profile")],
                },
            }}}
            self.session = self._call("POST", "/session", caps)["sessionId"]
        except BaseException:
            self.quit()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if self._call("GET", "/status").get("ready"):
                    return
            except (OSError, WebDriverError):
                pass
            if self.driver.poll() is not None or time.monotonic() > deadline:
                raise WebDriverError("chromedriver did not start (exit code %s); log %s:\n%s"
                                     % (self.driver.poll(), self.log, self._log_tail()))
            time.sleep(0.1)

    def _log_tail(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-20:])
        except OSError:
            return "(no log)"

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                answer = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                answer = json.loads(e.read() or b"{}")
            except ValueError:
                answer = {}
            raise WebDriverError("%s %s: %s %s" % (method, path, e.code,
                                                   (answer.get("value") or {}).get("message"))
                                 ) from None
        return answer.get("value", answer)

    def _s(self, path: str) -> str:
        return "/session/%s%s" % (self.session, path)

    def get(self, url: str) -> None:
        """Navigate to url (returns once the page has loaded)."""
        self._call("POST", self._s("/url"), {"url": url})

    def execute(self, script: str, *args: Any) -> Any:
        """Run JavaScript in the page (a function body: `return ...` gives the result)."""
        return self._call("POST", self._s("/execute/sync"), {"script": script, "args": list(args)})

    def wait_for(self, script: str, timeout: float = 30.0, interval: float = 0.1) -> Any:
        """Run `script` until it returns something truthy; that value.  The timeout is a
        safety net for a broken page, never a measurement."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.execute(script)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("the page never satisfied %r; page text:\n%s"
                                     % (script, self.execute("return document.body.innerText")))
            time.sleep(interval)

    def quit(self) -> None:
        if self.session is not None:
            try:
                self._call("DELETE", self._s(""), timeout=10)
            except (OSError, WebDriverError):
                pass
            self.session = None
        if self.driver.poll() is None:
            try:
                os.killpg(self.driver.pid, signal.SIGTERM)
                self.driver.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:  # chromedriver's group holds Chromium too: none of it may outlive the fixture
            os.killpg(self.driver.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.driver.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            pytest.fail("%s not found (Debian package %s; `make test` installs it)"
                        % (path, package))
    b = Browser()
    try:
        yield b
    finally:
        b.quit()

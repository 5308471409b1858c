"""EventSource in a real browser (headless Chromium, tests/browser.py) against the example app
(examples/app.py, what `make run` serves): its page /events/page opens an EventSource on
/events, whose stream ends the connection after every `per` events; the browser reconnects
with Last-Event-ID and the server resumes after that id.  The page writes each event's id into
the DOM; every id 1..count must arrive exactly once and in order, and the server must have been
asked with Last-Event-ID (the reconnections happened)."""
import json
from pathlib import Path

from _redis_server import free_port
from browser import browser  # noqa: F401 - the fixture
from conftest import h11_get, serve

ROOT = Path(__file__).resolve().parents[1]
COUNT, PER = 20, 5
WAIT = 60.0  # seconds: a safety net for a slow machine, never a measurement


def test_event_source_resumes_after_the_stream_is_cut(browser):  # noqa: F811
    env = {"REDIS_URL": "redis://127.0.0.1:%d/0" % free_port()}  # (Redis is not used here)
    with serve("examples.app:app", "--app-dir", str(ROOT), env=env) as srv:
        browser.get("http://127.0.0.1:%d/events/page?count=%d&per=%d" % (srv.port, COUNT, PER))
        browser.wait_for("return window.done", timeout=WAIT)
        items = browser.execute(
            "return Array.from(document.querySelectorAll('#ids li')).map(li => li.textContent)")
        opens = browser.execute("return document.getElementById('opens').textContent")
        seen = h11_get(srv.port, "/events/seen").json()["last_event_ids"]
    ids = [item.split(":", 1)[0] for item in items]
    assert ids == [str(n) for n in range(1, COUNT + 1)]  # each once, in order
    assert [json.loads(item.split(": ", 1)[1]) for item in items] == [
        {"n": n} for n in range(1, COUNT + 1)]
    # the first connection had no Last-Event-ID; each reconnection sent the last id it got
    assert seen == [None] + [str(n) for n in range(PER, COUNT, PER)]
    assert int(opens) == COUNT // PER

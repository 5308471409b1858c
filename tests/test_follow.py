"""follow(path) (flask_restful_async.streaming.follow) on _core.FileEvents: on our server as an
SSE endpoint (the watcher rides the server's libuv loop: uv_fs_event), and directly on plain
asyncio and uvloop (an inotify fd through add_reader).  Appended lines arrive, a line being
written is held until its line break, rotation (rename + recreate), truncation, a file created
after the start; closing releases the watcher.  Waits are generous timeouts, never measures."""
import asyncio
import gc
import os
import time
import urllib.parse

import pytest

from conftest import LOOPS, NATIVE_APP_DIR, RawConn, h11_get, serve
from flask_restful_async import _core
from flask_restful_async.streaming.follow import follow

WAIT = 30.0


def append(path, text, mode="a"):
    with open(path, mode) as f:
        f.write(text)


# ---- on our server: an EventStream of follow() ---------------------------------------------

@pytest.fixture(scope="module")
def server():
    with serve("streaming_app:app", "--app-dir", NATIVE_APP_DIR) as srv:
        yield srv


class Events:
    """The data lines of an SSE response, read from a raw connection."""

    def __init__(self, port, path, from_start=True):
        q = urllib.parse.urlencode({"path": str(path), **({"from_start": 1} if from_start else {})})
        self.conn = RawConn(port, timeout=WAIT)
        self.conn.send(b"GET /follow?%s HTTP/1.1\r\nHost: t\r\n\r\n" % q.encode())
        self.raw = b""
        self.head = None

    def next(self):
        if self.head is None:  # (the head may wait for the first event)
            buf = self.conn.read_until(lambda b: b"\r\n\r\n" in b)
            self.head, _, self.conn.buf = buf.partition(b"\r\n\r\n")
            assert self.head.startswith(b"HTTP/1.1 200"), self.head[:200]
        while True:
            # the body is chunked: the events are read from the de-chunked stream
            while b"\r\n" in self.conn.buf:
                size_line, _, rest = self.conn.buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if len(rest) < size + 2:
                    break
                self.raw += rest[:size]
                self.conn.buf = rest[size + 2:]
            if b"\n\n" in self.raw:
                event, _, self.raw = self.raw.partition(b"\n\n")
                data = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
                if data:
                    return b"\n".join(data).decode()
                continue  # a comment (ping) or retry line
            assert self.conn._fill(time.monotonic() + WAIT), \
                f"no event within {WAIT}s; have {self.raw!r}"

    def close(self):
        self.conn.close()


def test_server_watches_with_libuv(server, tmp_path):
    r = h11_get(server.port, "/follow/adapter?path=" + urllib.parse.quote(str(tmp_path / "x.log")))
    assert r.json() == {"adapter": "uv"}


def test_server_lines_partial_rotation_truncation(server, tmp_path):
    log = tmp_path / "app.log"
    append(log, "one\n")
    ev = Events(server.port, log)
    try:
        assert ev.next() == "one"
        append(log, "two\nthree\n")
        assert ev.next() == "two"
        assert ev.next() == "three"
        # a line still being written waits for its line break
        append(log, "par")
        append(log, "tial\nwhole\n")
        assert ev.next() == "partial"
        assert ev.next() == "whole"
        # rotation: the last lines of the old file, then the new file from its start
        append(log, "old-last\n")
        os.rename(log, str(log) + ".1")
        append(log, "new-first\n", mode="w")
        assert ev.next() == "old-last"
        assert ev.next() == "new-first"
        # truncation in place: read again from the start
        append(log, "x" * 5000 + "\n")
        assert ev.next() == "x" * 5000
        append(log, "after-truncate\n", mode="w")
        assert ev.next() == "after-truncate"
    finally:
        ev.close()


def test_server_file_created_after_start(server, tmp_path):
    log = tmp_path / "later.log"
    ev = Events(server.port, log)
    try:
        append(log, "first\n", mode="w")
        assert ev.next() == "first"
        append(log, "second\n")
        assert ev.next() == "second"
    finally:
        ev.close()


def watching(pid, path):
    """(fds open on path, inotify watches) of process pid."""
    files = watches = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target == str(path):
                files += 1
            elif target == "anon_inode:inotify":
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    watches += sum(line.startswith("inotify wd:") for line in f)
        except OSError:
            pass
    return files, watches


def test_server_releases_the_watcher_when_the_client_leaves(server, tmp_path):
    log = tmp_path / "fds.log"
    append(log, "a\n")
    ev = Events(server.port, log)
    assert ev.next() == "a"
    files, watches = watching(server.proc.pid, log)
    assert files == 1 and watches >= 1
    ev.close()
    deadline = time.monotonic() + WAIT
    while watching(server.proc.pid, log) != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert watching(server.proc.pid, log) == (0, 0), "the file and its watch were not released"


# ---- on plain asyncio loops ----------------------------------------------------------------

def run(loop_name, coro_fn):
    if loop_name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro_fn(), WAIT))
    finally:
        loop.close()


def fd_count():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("loop_name", LOOPS)
def test_follow_on_a_plain_loop(loop_name, tmp_path):
    log = tmp_path / "plain.log"

    async def main():
        assert _core.FileEvents(asyncio.get_running_loop(), str(log), lambda: None).adapter == "asyncio"
        append(log, "old\n")
        lines = follow(log, from_start=True)
        got = [await lines.__anext__()]
        append(log, "two\npar")
        got.append(await lines.__anext__())
        append(log, "tial\n")
        got.append(await lines.__anext__())
        append(log, "before-rotate\n")
        os.rename(log, str(log) + ".1")
        append(log, "after-rotate\n", mode="w")
        got += [await lines.__anext__(), await lines.__anext__()]
        append(log, "y" * 3000 + "\n")
        got.append(len(await lines.__anext__()))
        append(log, "truncated\n", mode="w")
        got.append(await lines.__anext__())
        await lines.aclose()
        return got

    assert run(loop_name, main) == ["old", "two", "partial", "before-rotate", "after-rotate",
                                    3000, "truncated"]


@pytest.mark.parametrize("loop_name", LOOPS)
def test_follow_waits_for_a_file_created_later(loop_name, tmp_path):
    log = tmp_path / "later.log"

    async def main():
        lines = follow(log)
        task = asyncio.ensure_future(lines.__anext__())
        await asyncio.sleep(0)  # the generator runs up to its wait
        await asyncio.sleep(0)
        assert not task.done()
        append(log, "created\n", mode="w")
        first = await task
        await lines.aclose()
        return first

    assert run(loop_name, main) == "created"


@pytest.mark.parametrize("loop_name", LOOPS)
def test_close_and_collection_release_the_watcher(loop_name, tmp_path):
    log = tmp_path / "fds.log"
    append(log, "a\n")
    calls = []

    async def main():
        loop = asyncio.get_running_loop()
        gc.collect()  # (files other tests left to the collector are closed first)
        base = fd_count()
        w = _core.FileEvents(loop, str(log), lambda: calls.append(1))
        assert fd_count() == base + 1
        w.close()
        w.close()  # idempotent
        assert w.closed and fd_count() == base
        append(log, "b\n")  # no callback after close
        # never closed: collected, it lets go of its fd and the loop's reader
        w = _core.FileEvents(loop, str(log), lambda: calls.append(2))
        del w
        gc.collect()
        assert fd_count() == base
        # follow() closes its watcher and file when closed
        lines = follow(log, from_start=True)
        assert await lines.__anext__() == "a"
        assert fd_count() == base + 2  # the file and the watcher
        await lines.aclose()
        assert fd_count() == base
        await asyncio.sleep(0.05)

    run(loop_name, main)
    assert calls == []


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_burst_of_writes_makes_few_callbacks(loop_name, tmp_path):
    log = tmp_path / "burst.log"
    append(log, "")

    async def main():
        loop = asyncio.get_running_loop()
        calls = []
        woke = asyncio.Event()
        w = _core.FileEvents(loop, str(log), lambda: (calls.append(1), woke.set()))
        with open(log, "a") as f:
            for i in range(200):
                f.write(f"{i}\n")
                f.flush()
        await asyncio.wait_for(woke.wait(), WAIT)
        w.close()
        return len(calls)

    assert run(loop_name, main) < 200


def test_bad_arguments(tmp_path):
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError):
            _core.FileEvents(loop, str(tmp_path) + "/", lambda: None)
        with pytest.raises(TypeError):
            _core.FileEvents(loop, str(tmp_path / "f"), None)
        with pytest.raises(OSError):
            _core.FileEvents(loop, str(tmp_path / "missing-dir" / "f"), lambda: None)
    finally:
        loop.close()

"""Files sent zero-copy by our server: ASGI http.response.zerocopy / http.response.pathsend,
the WSGI wsgi.file_wrapper, and send_file() of the flask-restful app on both roads (a coroutine
on the loop, a sync Resource in the pool).  Apps: tests/apps/files_app.py (raw ASGI, plain
WSGI) and tests/apps_api/streaming_app.py.  That sendfile(2) carried the bytes is read from the
server's own counter (`_core.sendfile_bytes()`, served by the apps): /proc/PID/io cannot tell,
since the kernel counts a sendfile in rchar and wchar like a read and a write."""
import hashlib
import json
import os
import socket
import time

import pytest

from conftest import HOST, IO_TIMEOUT, NATIVE_APP_DIR, RawConn, h11_get, serve

WAIT = 30.0  # seconds: a safety net for a slow machine, never a measurement
BIG = 8 * 1024 * 1024 + 12345
SPARSE = 512 * 1024 * 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    data = os.urandom(BIG)
    (d / "big.bin").write_bytes(data)
    (d / "small.txt").write_bytes(b"0123456789" * 10)
    with open(d / "sparse.bin", "wb") as f:  # 512 MiB of zeros that take no disk
        f.truncate(SPARSE)
    return d, data


@pytest.fixture(scope="module")
def native(files, loop_name):
    with serve("streaming_app:app", "--app-dir", NATIVE_APP_DIR, "--loop", loop_name,
               env={"FRA_TEST_FILES": str(files[0])}) as srv:
        yield srv


@pytest.fixture(scope="module")
def asgi(files, loop_name):
    with serve("files_app:asgi", "--interface", "asgi", "--loop", loop_name,
               env={"FRA_TEST_FILES": str(files[0])}) as srv:
        yield srv


@pytest.fixture(scope="module")
def wsgi(files):
    with serve("files_app:wsgi", "--interface", "wsgi",
               env={"FRA_TEST_FILES": str(files[0])}) as srv:
        yield srv


def sent(srv, path="/stats"):
    """Bytes the server process has sent with sendfile(2)."""
    return h11_get(srv.port, path).json()["sendfile"]


def native_sent(srv):
    return sent(srv, "/sendfile-stats")


def fds(srv):
    return len(os.listdir("/proc/%d/fd" % srv.proc.pid))


def wait_fds(srv, pred):
    """The server's descriptor count once pred(count) holds (or the last seen)."""
    deadline = time.monotonic() + WAIT
    n = fds(srv)
    while not pred(n) and time.monotonic() < deadline:
        time.sleep(0.02)
        n = fds(srv)
    return n


def stable_fds(srv, polls=5):
    """The server's descriptor count once it has not changed for a few polls (connections of
    earlier requests closed)."""
    last, same = fds(srv), 0
    while same < polls:
        time.sleep(0.05)
        n = fds(srv)
        same = same + 1 if n == last else 0
        last = n
    return last


class Download:
    """One response read from a raw socket without keeping the body: its length, digest, the
    first bytes, and whether it was chunked."""

    def __init__(self, port, target, method="GET", headers=b"", rcvbuf=None, step=1 << 20,
                 pause=0.0, on_progress=None):
        s = socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.sendall(b"%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (method.encode(), target.encode(),
                                                             headers))
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, "closed inside the head: %r" % buf
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, v = line.split(b":", 1)
            self.headers[k.strip().lower()] = v.strip()
        self.digest = hashlib.sha256()
        self.length = 0
        self.first = b""
        self.chunked = self.headers.get(b"transfer-encoding") == b"chunked"
        raw = _Reader(s, rest, step, pause, on_progress)
        if method == "HEAD":
            pass
        elif self.chunked:
            while True:
                size = int(raw.line().split(b";")[0], 16)
                if size == 0:
                    assert raw.line() == b""
                    break
                raw.body(size, self)
                assert raw.exact(2) == b"\r\n"
        else:
            raw.body(int(self.headers[b"content-length"]), self)
        self.sock = s
        self.leftover = raw.buf

    def feed(self, data):
        if len(self.first) < 64:
            self.first += data[:64 - len(self.first)]
        self.digest.update(data)
        self.length += len(data)

    def close(self):
        self.sock.close()


class _Reader:
    def __init__(self, sock, buf, step, pause, on_progress):
        self.sock, self.buf, self.step, self.pause = sock, buf, step, pause
        self.on_progress = on_progress
        self.got = 0

    def _more(self):
        if self.pause:
            time.sleep(self.pause)
        chunk = self.sock.recv(self.step)
        assert chunk, "the server closed the connection inside the body"
        self.got += len(chunk)
        if self.on_progress:
            self.on_progress(self.got)
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def body(self, n, sink):
        while n:
            if not self.buf:
                self._more()
            take = self.buf[:n]
            self.buf = self.buf[len(take):]
            sink.feed(take)
            n -= len(take)


def get(port, target, **kw):
    d = Download(port, target, **kw)
    d.close()
    return d


def sha(data):
    return hashlib.sha256(data).hexdigest()


# ---- send_file() of the flask-restful app --------------------------------------------------

def test_send_file_goes_by_sendfile(native, files):
    _, data = files
    before = native_sent(native)
    d = get(native.port, "/files/big.bin")
    assert d.status == 200 and d.headers[b"content-length"] == b"%d" % BIG
    assert d.digest.hexdigest() == sha(data)
    assert native_sent(native) - before >= BIG
    before = native_sent(native)
    d = get(native.port, "/file-object/big.bin")
    assert d.digest.hexdigest() == sha(data)
    assert native_sent(native) - before >= BIG


def test_send_file_from_a_sync_resource_uses_the_file_wrapper(native, files):
    _, data = files
    before = native_sent(native)
    d = get(native.port, "/files-sync/big.bin")
    assert d.status == 200 and d.digest.hexdigest() == sha(data)
    assert native_sent(native) - before >= BIG


def test_ranges(native, files):
    _, data = files
    before = native_sent(native)
    d = get(native.port, "/files/big.bin", headers=b"Range: bytes=1000-1999999\r\n")
    assert d.status == 206
    assert d.headers[b"content-range"] == b"bytes 1000-1999999/%d" % BIG
    assert d.digest.hexdigest() == sha(data[1000:2000000])
    assert native_sent(native) - before >= 1999000
    d = get(native.port, "/files/big.bin", headers=b"Range: bytes=-100\r\n")
    assert d.status == 206 and d.digest.hexdigest() == sha(data[-100:])
    with RawConn(native.port) as c:  # several ranges: multipart/byteranges, file parts sent in C
        c.send(b"GET /files/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9,5000000-5999999\r\n\r\n")
        r = c.read_response()
    assert r.status == 206
    ctype = r.header("content-type")
    assert ctype.startswith(b"multipart/byteranges; boundary=")
    boundary = ctype.split(b"boundary=")[1]
    parts = [p for p in r.body.split(b"--" + boundary) if p.strip(b"\r\n-")]
    assert len(parts) == 2
    bodies = [p.split(b"\r\n\r\n", 1)[1][:-2] for p in parts]
    assert bodies[0] == data[0:10] and bodies[1] == data[5000000:6000000]
    assert int(r.header("content-length")) == len(r.body)
    d = get(native.port, "/files/big.bin", headers=b"Range: bytes=%d-\r\n" % (BIG + 10))
    assert d.status == 416 and d.headers[b"content-range"] == b"bytes */%d" % BIG


def test_head_sends_no_file_bytes(native, files):
    before = native_sent(native)
    with RawConn(native.port) as c:
        c.send(b"HEAD /files/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        r = c.read_response(method="HEAD")
        assert r.header("content-length") == b"%d" % BIG and r.body == b""
        c.send(b"GET /files/small.txt HTTP/1.1\r\nHost: t\r\n\r\n")  # the connection goes on
        assert c.read_response().body == b"0123456789" * 10
    assert native_sent(native) - before == 100


# ---- raw ASGI: pathsend and zerocopy ---------------------------------------------------------

def test_scope_announces_the_extensions(asgi):
    assert h11_get(asgi.port, "/extensions").json() == ["http.response.pathsend",
                                                        "http.response.zerocopy"]


def test_pathsend(asgi, files):
    _, data = files
    before = sent(asgi)
    d = get(asgi.port, "/pathsend/big.bin")
    assert d.status == 200 and d.headers[b"content-length"] == b"%d" % BIG
    assert d.digest.hexdigest() == sha(data)
    d = get(asgi.port, "/pathsend-bare/big.bin")  # no length from the app: the file's size
    assert d.headers[b"content-length"] == b"%d" % BIG and not d.chunked
    assert d.digest.hexdigest() == sha(data)
    assert sent(asgi) - before >= 2 * BIG


def test_zerocopy_with_content_length_and_chunked(asgi, files):
    _, data = files
    before = sent(asgi)
    d = get(asgi.port, "/zerocopy/big.bin?offset=7&count=3000000")
    assert not d.chunked and d.headers[b"content-length"] == b"3000000"
    assert d.digest.hexdigest() == sha(data[7:3000007])
    d = get(asgi.port, "/zerocopy/big.bin?parts=5")
    assert d.chunked and d.digest.hexdigest() == sha(data)
    assert sent(asgi) - before >= 3000000 + BIG
    d = get(asgi.port, "/zerocopy-fd/big.bin?seek=1000")  # an int fd from its position
    assert d.digest.hexdigest() == sha(data[1000:])


def test_zerocopy_in_order_with_body_bytes(asgi, files):
    """Bytes sent before a file are out before it, and bytes after it follow it."""
    _, data = files
    for target in ("/zerocopy/big.bin?around=1", "/zerocopy/big.bin?around=1&parts=3"):
        d = get(asgi.port, target)
        assert d.chunked and d.first.startswith(b"<<" + data[:10])
        assert d.digest.hexdigest() == sha(b"<<" + data + b">>")


def test_pipelined_file_responses_keep_their_order(asgi, files):
    _, data = files
    with RawConn(asgi.port) as c:
        c.send(b"GET /pathsend/big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
               b"GET /zerocopy/small.txt?around=1 HTTP/1.1\r\nHost: t\r\n\r\n"
               b"HEAD /pathsend/big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
               b"GET /pathsend/small.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.read_response(timeout=WAIT).body == data
        assert c.read_response().body == b"<<" + b"0123456789" * 10 + b">>"
        r = c.read_response(method="HEAD")
        assert r.header("content-length") == b"%d" % BIG and r.body == b""
        assert c.read_response().body == b"0123456789" * 10


def test_slow_reader_gets_every_byte_while_others_are_served(asgi, files):
    _, data = files
    others = []

    def progress(got):
        # Halfway through, other clients are answered at once.
        if got > BIG // 2 and not others:
            others.append(get(asgi.port, "/pathsend/small.txt").length)
            others.append(h11_get(asgi.port, "/extensions").status)

    d = get(asgi.port, "/pathsend/big.bin", rcvbuf=16384, step=32768, pause=0.0005,
            on_progress=progress)
    assert d.digest.hexdigest() == sha(data)
    assert others == [100, 200]


def test_client_that_leaves_mid_file_releases_everything(asgi, files):
    baseline = stable_fds(asgi)
    for target in ("/pathsend/sparse.bin", "/zerocopy/sparse.bin?parts=4"):
        for _ in range(3):
            s = socket.create_connection((HOST, asgi.port), timeout=IO_TIMEOUT)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % target.encode())
            got = 0
            while got < 300000:
                chunk = s.recv(65536)
                assert chunk
                got += len(chunk)
            s.close()  # unread bytes: a reset
    # the files, the sockets and their dups closed
    assert wait_fds(asgi, lambda n: n <= baseline) <= baseline
    assert get(asgi.port, "/pathsend/small.txt").length == 100


def test_rss_stays_flat_while_a_large_file_goes_out(asgi):
    get(asgi.port, "/pathsend/small.txt")
    before_rss, before = asgi.rss(), sent(asgi)
    peak = [before_rss]

    def progress(got):
        if got % (64 << 20) < (1 << 20):
            peak.append(asgi.rss())

    d = get(asgi.port, "/pathsend/sparse.bin", on_progress=progress)
    assert d.length == SPARSE
    assert sent(asgi) - before >= SPARSE
    # Buffered, the file would add hundreds of MiB; sent from the page cache, nothing.
    assert max(peak) - before_rss < 32 << 20, (before_rss, peak)


def test_write_timeout_closes_a_client_that_stops_reading_a_file(files):
    with serve("files_app:asgi", "--interface", "asgi", "--timeout-write", "1",
               env={"FRA_TEST_FILES": str(files[0])}) as srv:
        get(srv.port, "/pathsend/small.txt")
        baseline = stable_fds(srv)
        s = socket.create_connection((HOST, srv.port), timeout=IO_TIMEOUT)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.sendall(b"GET /pathsend/sparse.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        # The client reads nothing: the kernel's buffers fill, sendfile stalls, and the write
        # timeout ends the connection (its socket, the file and the socket's dup).
        assert wait_fds(srv, lambda n: n >= baseline + 3) >= baseline + 3  # those three open
        assert wait_fds(srv, lambda n: n <= baseline) <= baseline
        s.close()
        assert get(srv.port, "/pathsend/small.txt").length == 100


# ---- WSGI: wsgi.file_wrapper -----------------------------------------------------------------

def test_file_wrapper_is_sent_by_sendfile(wsgi, files):
    _, data = files
    before = sent(wsgi)
    d = get(wsgi.port, "/big.bin")
    assert d.status == 200 and d.headers[b"content-length"] == b"%d" % BIG  # known: the size
    assert d.digest.hexdigest() == sha(data)
    assert sent(wsgi) - before >= BIG


def test_file_wrapper_from_the_position_up_to_content_length(wsgi, files):
    _, data = files
    before = sent(wsgi)
    d = get(wsgi.port, "/big.bin?seek=100&cl=1000000")
    assert d.headers[b"content-length"] == b"1000000"
    assert d.digest.hexdigest() == sha(data[100:1000100])
    assert sent(wsgi) - before == 1000000
    d = get(wsgi.port, "/big.bin?seek=%d" % (BIG - 10))
    assert d.digest.hexdigest() == sha(data[-10:])


def test_file_wrapper_without_a_descriptor_is_iterated(wsgi, files):
    _, data = files
    before = sent(wsgi)
    d = get(wsgi.port, "/small.txt?bytesio=1&seek=5")
    assert d.status == 200 and d.digest.hexdigest() == sha((b"0123456789" * 10)[5:])
    assert sent(wsgi) == before


def test_file_wrapper_head_and_keep_alive(wsgi):
    with RawConn(wsgi.port) as c:
        c.send(b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        r = c.read_response(method="HEAD")
        assert r.header("content-length") == b"%d" % BIG and r.body == b""
        assert c.read_response().body == b"0123456789" * 10


def test_flask_send_file_goes_by_sendfile(files):
    _, data = files
    with serve("files_app:flask_app", "--interface", "wsgi",
               env={"FRA_TEST_FILES": str(files[0])}) as srv:
        before = sent(srv)
        d = get(srv.port, "/send/big.bin")
        assert d.status == 200 and d.digest.hexdigest() == sha(data)
        assert sent(srv) - before >= BIG


def test_file_wrapper_client_that_leaves(wsgi):
    baseline = stable_fds(wsgi)
    for _ in range(3):
        s = socket.create_connection((HOST, wsgi.port), timeout=IO_TIMEOUT)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /sparse.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        assert s.recv(65536)
        s.close()
    assert wait_fds(wsgi, lambda n: n <= baseline) <= baseline
    assert json.loads(h11_get(wsgi.port, "/stats").body)["sendfile"] > 0

"""Server-Sent Events on our server (natively, and the same app through its ASGI entry) and
under uvicorn: keepalive pings on a silent stream and none on a busy one, the send timeout
dropping a client that stops reading, Broadcast (fan-out in C on our server: order, a stalled
subscriber dropped while the others go on, subscribers leaving, Last-Event-ID replay), and a
handler cancelled when its client leaves while it awaits neither receive() nor send().  The app
is tests/apps_api/streaming_app.py; every test talks to the real server over a socket."""
import json
import socket
import time
import uuid

import pytest

from conftest import HOST, H11Client, h11_get, serve_streaming_app

WAIT = 30.0  # seconds: a safety net for a slow machine, never a measurement


@pytest.fixture(scope="module", params=["ours", "ours-asgi", "uvicorn"])
def server(request, tmp_path_factory):
    files = tmp_path_factory.mktemp("files")
    env = {"FRA_TEST_FILES": str(files), "FRA_TEST_LOG": str(files / "app.log")}
    with serve_streaming_app(request.param, env=env) as srv:
        srv.kind = request.param
        yield srv


def state(port):
    return h11_get(port, "/state").json()


def subscribers(port):
    return h11_get(port, "/events/subscribers").json()


def wait_for(what, fetch, pred):
    deadline = time.monotonic() + WAIT
    while True:
        value = fetch()
        if pred(value):
            return value
        assert time.monotonic() < deadline, "%s never reached the condition: %r" % (what, value)
        time.sleep(0.02)


def publish(port, data, id=None, count=1, small=False):
    body = {"data": data, "count": count, "small": small}
    if id is not None:
        body["id"] = id
    with H11Client(port) as c:
        r = c.request("POST", "/events/publish", headers=[("content-type", "application/json")],
                      body=json.dumps(body).encode())
    assert r.status == 200, r.body
    return json.loads(r.body)


class EventReader:
    """A raw SSE client: sends the request, checks the head, then reads events out of the
    chunked body (or a raw one) as dicts {field: [values]}; a comment is {"": [text]}."""

    def __init__(self, port, target, headers=(), rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(WAIT)
        self.sock.connect((HOST, port))
        extra = "".join("%s: %s\r\n" % h for h in headers)
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (target, extra)).encode())
        self.raw = b""
        self.body = b""
        self.ended = False
        self.head = None

    def read_head(self):
        while b"\r\n\r\n" not in self.raw:
            self._recv()
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split()[1])
        self.head = {k.strip().lower(): v.strip() for k, _, v in (l.partition(b":") for l in lines[1:])}
        self.chunked = self.head.get(b"transfer-encoding") == b"chunked"
        assert self.status == 200 and self.head[b"content-type"].startswith(b"text/event-stream")
        return self

    def _recv(self):
        data = self.sock.recv(65536)
        assert data, "the stream ended"
        self.raw += data

    def _dechunk(self):
        if not self.chunked:
            self.body += self.raw
            self.raw = b""
            return
        while b"\r\n" in self.raw:
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line, 16)
            if len(rest) < size + 2:
                return
            assert rest[size:size + 2] == b"\r\n"
            if size == 0:
                self.ended = True
            self.body += rest[:size]
            self.raw = rest[size + 2:]

    def event(self):
        if self.head is None:
            self.read_head()
        while True:
            self._dechunk()
            if b"\n\n" in self.body:
                raw, self.body = self.body.split(b"\n\n", 1)
                fields = {}
                for line in raw.decode().split("\n"):
                    name, _, value = line.partition(":")
                    fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
                return fields
            assert not self.ended, "the stream ended"
            self._recv()

    def events(self, n):
        return [self.event() for _ in range(n)]

    def data_events(self, n):
        """The next n events that are not pings."""
        out = []
        while len(out) < n:
            e = self.event()
            if e != {"": ["ping"]}:
                out.append(e)
        return out

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


PING = {"": ["ping"]}


# ---- pings ------------------------------------------------------------------------------------

def test_pings_keep_a_silent_stream_alive_and_its_source_is_closed_when_the_client_leaves(server):
    before = state(server.port)["closed"]
    with EventReader(server.port, "/events/quiet") as r:
        assert r.events(3) == [PING, PING, PING]
    # the source awaited an event that never comes (neither receive() nor send()): the
    # client leaving cancelled it and its finally ran
    wait_for("closed", lambda: state(server.port)["closed"], lambda n: n > before)


def test_no_pings_on_a_busy_stream(server):
    with EventReader(server.port, "/events?limit=30&delay=0.01&ping=5&retry=100") as r:
        events = r.events(31)
        assert events[0] == {"retry": ["100"]}
        assert [e["id"][0] for e in events[1:]] == [str(n) for n in range(1, 31)]
        assert all(e["event"] == ["tick"] for e in events[1:])
        while not r.ended:  # the stream ends with the source, nothing else on the way
            r._dechunk()
            if not r.ended:
                r._recv()
        assert r.body == b""


def test_pings_come_between_events_of_a_slow_stream(server):
    with EventReader(server.port, "/events?limit=2&delay=0.6&ping=0.2&retry=100") as r:
        events = r.events(2)
        assert events[0] == {"retry": ["100"]} and events[1]["id"] == ["1"]
        between = []
        while True:
            e = r.event()
            if e != PING:
                break
            between.append(e)
        assert e["id"] == ["2"]
        assert between, "no ping while the stream was silent for 0.6 s (ping=0.2)"


# ---- the send timeout -------------------------------------------------------------------------

def test_send_timeout_drops_a_client_that_stops_reading(server):
    before = state(server.port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((HOST, server.port))
    try:
        sock.sendall(b"GET /events/flood?timeout=0.3 HTTP/1.1\r\nHost: t\r\n\r\n")
        # never read: the generator's finally runs once the server gives up on the client
        wait_for("flood_closed", lambda: state(server.port)["flood_closed"],
                 lambda n: n > before["flood_closed"])
        if server.kind != "uvicorn":
            # and our server closed the connection: what the kernel holds, then the end
            sock.settimeout(WAIT)
            while True:
                try:
                    if not sock.recv(1 << 20):
                        break
                except ConnectionResetError:
                    break
    finally:
        sock.close()
    assert state(server.port)["flood_started"] == before["flood_started"] + 1


# ---- Broadcast --------------------------------------------------------------------------------

def subscribe(port, n, extra=""):
    """n subscribers with their heads read, counted by the app."""
    key = "small" if "small" in extra else "broadcast"
    base = subscribers(port)[key]
    readers = [EventReader(port, "/events/broadcast" + extra) for _ in range(n)]
    wait_for("subscribers", lambda: subscribers(port)[key], lambda k: k == base + n)
    for r in readers:
        r.read_head()
    return readers


def test_publish_reaches_every_subscriber_in_order(server):
    tag = uuid.uuid4().hex[:8]
    readers = subscribe(server.port, 5)
    try:
        for i in range(10):
            assert publish(server.port, "%s %d" % (tag, i), id="%s-%d" % (tag, i))["sent"] >= 5
        for r in readers:
            events = r.data_events(10)
            assert [e["data"] for e in events] == [["%s %d" % (tag, i)] for i in range(10)]
            assert [e["id"] for e in events] == [["%s-%d" % (tag, i)] for i in range(10)]
    finally:
        for r in readers:
            r.close()


def test_subscribers_that_leave_are_no_longer_counted_and_their_handlers_end(server):
    def running():  # subscriber handlers that have not ended
        s = state(server.port)
        return s["sub_started"] - s["sub_ended"]

    # earlier tests' subscribers are gone
    wait_for("handlers running", running, lambda k: k == 0)
    base = subscribers(server.port)["broadcast"]
    readers = subscribe(server.port, 3)
    assert running() == 3
    readers[0].close()
    readers[1].close()
    wait_for("subscribers", lambda: subscribers(server.port)["broadcast"], lambda k: k == base + 1)
    # their handlers (awaiting a future, not the client) were cancelled and ended
    wait_for("handlers running", running, lambda k: k == 1)
    tag = uuid.uuid4().hex[:8]
    assert publish(server.port, tag)["subscribers"] == base + 1
    assert readers[2].data_events(1)[0]["data"] == [tag]
    readers[2].close()
    wait_for("subscribers", lambda: subscribers(server.port)["broadcast"], lambda k: k == base)
    wait_for("handlers running", running, lambda k: k == 0)


def test_a_stalled_subscriber_is_dropped_while_the_others_go_on(server):
    base = subscribers(server.port)["small"]
    [good] = subscribe(server.port, 1, "?small=1")
    stalled = EventReader(server.port, "/events/broadcast?small=1", rcvbuf=4096)
    wait_for("subscribers", lambda: subscribers(server.port)["small"], lambda k: k == base + 2)
    try:
        data = "y" * 16000
        # ours hands each event to the kernel at once, so a burst beyond max_queued reaches a
        # reading client; another server holds a burst in the subscription's queue until its
        # writer takes it, so there the bursts stay below max_queued (64 KiB)
        burst = 1 if server.kind == "uvicorn" else 10
        published = 0
        deadline = time.monotonic() + WAIT
        while True:
            out = publish(server.port, data, count=burst, small=True)
            published += burst
            for _ in range(burst):  # the reading subscriber takes everything
                assert good.data_events(1)[0]["data"] == [data]
            if out["subscribers"] == base + 1:
                break
            assert time.monotonic() < deadline, "the stalled subscriber was never dropped"
        # it got no more than the kernel buffers and max_queued held: dropped, not waited for
        sent = out["sent"] if burst > 1 else [out["sent"]]
        assert min(sent) == base + 1
        out = publish(server.port, "after", small=True)
        assert out["sent"] == base + 1
        assert good.data_events(1)[0]["data"] == ["after"]
    finally:
        good.close()
        stalled.close()


def test_a_publish_counts_as_a_write_for_the_ping_timer(server):
    [r] = subscribe(server.port, 1, "?ping=1")
    try:
        tag = uuid.uuid4().hex[:8]
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < 2.5:  # longer than two ping intervals
            publish(server.port, "%s %d" % (tag, n))
            n += 1
            time.sleep(0.05)
        events = r.events(n)
        # every publish re-armed the ping timer: only the events, in order, and no ping
        assert [e.get("data") for e in events] == [["%s %d" % (tag, i)] for i in range(n)]
    finally:
        r.close()


def test_last_event_id_replays_what_was_missed(server):
    tag = uuid.uuid4().hex[:8]
    for i in range(1, 4):
        publish(server.port, "%s %d" % (tag, i), id="%s-%d" % (tag, i))
    base = subscribers(server.port)["broadcast"]
    with EventReader(server.port, "/events/broadcast", headers=[("Last-Event-ID", "%s-1" % tag)]) as r:
        assert [e["id"] for e in r.data_events(2)] == [["%s-2" % tag], ["%s-3" % tag]]
        wait_for("subscribers", lambda: subscribers(server.port)["broadcast"], lambda k: k == base + 1)
        publish(server.port, "%s 4" % tag, id="%s-4" % tag)
        assert r.data_events(1)[0]["id"] == ["%s-4" % tag]


def test_stream_group_rejects_a_bad_max_queued():
    from flask_restful_async import _core
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_queued"):
            _core.StreamGroup(bad)
    with pytest.raises(TypeError):
        _core.StreamGroup("1")
    group = _core.StreamGroup(10)
    assert len(group) == 0 and group.publish(b"x") == 0
    with pytest.raises(TypeError):
        group.add(object())

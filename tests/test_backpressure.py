"""Response backpressure: a client that stops reading a large streamed response.

The app streams 128 MiB in 64 KiB messages and counts the send() calls that returned.  While
the client reads nothing, the count must stop well short of the end (send() blocks) and the
server's RSS must not grow by anything like the response size.  Reading resumes the stream
and the whole body arrives.
"""
import socket
import uuid

from conftest import (RawConn, app_state, kernel_buffer_max, request_bytes, wait_stalled,
                      wait_state)

MiB = 1024 * 1024
CHUNK = 64 * 1024
# Bytes that may leave the app before send() blocks: the kernel's send buffer on the server
# socket (the client's receive buffer is pinned at 64 KiB) plus 16 MiB for the server itself.
ALLOWED = kernel_buffer_max("wmem") + 16 * MiB
COUNT = max(2048, (ALLOWED + 64 * MiB) // CHUNK)      # at least 128 MiB


def read_body_counting(conn, expected, timeout=60):
    """Read the rest of a Content-Length response without keeping it; return bytes seen."""
    buf = conn.read_until(lambda b: b"\r\n\r\n" in b, timeout=timeout)
    head_end = buf.find(b"\r\n\r\n")
    assert head_end >= 0, f"response head never arrived: {buf[:200]!r}"
    assert buf.startswith(b"HTTP/1.1 200"), buf[:100]
    got = len(buf) - head_end - 4
    conn.buf = b""
    conn.sock.settimeout(timeout)
    while got < expected:
        data = conn.sock.recv(1 << 20)
        if not data:
            break
        got += len(data)
    return got


def test_slow_reader_blocks_send_and_bounds_memory(asgi_server):
    port = asgi_server.port
    key = "bp-" + uuid.uuid4().hex
    total = CHUNK * COUNT
    rss0 = asgi_server.rss()
    with RawConn(port, rcvbuf=64 * 1024) as c:
        c.send(request_bytes("GET", f"/t/progress-stream?id={key}&chunk={CHUNK}&count={COUNT}"))
        stalled = wait_stalled(port, key)
        rss_stalled = asgi_server.rss()
        assert stalled is not None and stalled < COUNT, (
            f"send() never blocked: the app sent all {COUNT} chunks to a client reading nothing")
        assert stalled * CHUNK < ALLOWED, f"{stalled * CHUNK >> 20} MiB accepted before blocking"
        assert rss_stalled - rss0 < 16 * MiB, (
            f"server RSS grew by {(rss_stalled - rss0) >> 20} MiB for a stalled response")
        # Reading resumes the app, and every byte arrives.
        got = read_body_counting(c, total)
    assert got == total
    assert app_state(port, key) == COUNT


def test_two_slow_readers_do_not_block_others(asgi_server):
    """While two responses are stalled on unread sockets, other clients are served."""
    port = asgi_server.port
    keys = ["bp2-" + uuid.uuid4().hex for _ in range(2)]
    conns = [RawConn(port, rcvbuf=64 * 1024) for _ in keys]
    try:
        for c, k in zip(conns, keys):
            c.send(request_bytes("GET", f"/t/progress-stream?id={k}&chunk={CHUNK}&count={COUNT}"))
        for k in keys:
            assert wait_stalled(port, k) < COUNT
        with RawConn(port) as other:
            other.send(request_bytes("GET", "/t/big?size=100000"))
            r = other.read_response()
            assert r.status == 200 and len(r.body) == 100000
    finally:
        for c in conns:
            c.close()


def test_client_gone_mid_stream_frees_the_app(asgi_server):
    """A stalled client that resets the connection: the app's blocked send() is released
    and its next send() raises ClientDisconnected (an OSError, ASGI spec 2.4), so the handler
    ends instead of producing for nobody, and the server keeps serving."""
    port = asgi_server.port
    key = "bp3-" + uuid.uuid4().hex
    c = RawConn(port, rcvbuf=64 * 1024)
    c.send(request_bytes("GET", f"/t/progress-stream?id={key}&chunk={CHUNK}&count={COUNT}"))
    stalled = wait_stalled(port, key)
    assert stalled < COUNT
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()   # RST
    end = wait_state(port, key + ":end", timeout=30)
    assert end == "ClientDisconnected", end
    with RawConn(port) as other:
        other.send(request_bytes("GET", "/after-reset"))
        assert other.read_response().status == 200

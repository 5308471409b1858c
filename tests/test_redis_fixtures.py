"""The Redis fixtures themselves (conftest.py, tests/_redis_server.py): each kind of server starts
on its own, answers PING, a real client (redis-py with hiredis) talks to it by its URL, and
kill/stop/restart/freeze do what the Redis client's failure tests rely on."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import stat

import pytest
import redis.asyncio as redis_py
from redis.utils import HIREDIS_AVAILABLE

from conftest import poll
from _redis_server import RedisServer, tool_env


def _state(pid: int) -> str:
    """The process state letter from /proc (R, S, T for stopped, ...)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _closed(sock) -> bool:
    """True when the peer closed the connection (EOF or reset) with nothing sent before."""
    try:
        return sock.recv(64) == b""
    except ConnectionResetError:
        return True


def _roundtrip(url: str, **kwargs) -> bytes:
    """SET then GET through redis-py's asyncio client (hiredis parser): the URL is usable."""

    async def main():
        client = redis_py.Redis.from_url(url, **kwargs)
        try:
            await client.set("fixture:key", b"value \x00\xff")
            return await client.get("fixture:key")
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_redis_py_uses_hiredis():
    # the peer in the tests and the bench is redis-py *with* hiredis, as the issue asks
    assert HIREDIS_AVAILABLE


def test_session_server_is_ours_and_keeps_nothing(redis_server):
    assert redis_server.alive() and redis_server.kind == "tcp"
    assert redis_server.port not in (0, 6379)
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.ping()
    assert redis_server.cli("CONFIG", "GET", "bind").splitlines() == ["bind", "127.0.0.1"]
    assert redis_server.cli("CONFIG", "GET", "save").splitlines() == ["save"]
    assert redis_server.cli("CONFIG", "GET", "appendonly").splitlines() == ["appendonly", "no"]
    assert redis_server.info("server")["process_id"] == str(redis_server.pid)


def test_cli_round_trip_and_error_reply(redis_server):
    assert redis_server.cli("SET", "fixture:cli", "hello world") == "OK"
    assert redis_server.cli("GET", "fixture:cli") == "hello world"
    with pytest.raises(RuntimeError, match="unknown command"):
        redis_server.cli("NOSUCHCOMMAND")


def test_tools_do_not_inherit_the_sanitizer_preload(monkeypatch):
    # make test-asan preloads libasan into the test processes; redis-server, redis-cli and
    # openssl are started without it (redis-server rewrites its own environ for its process
    # title, so /proc/PID/environ cannot show this)
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libasan.so")
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=0")
    monkeypatch.setenv("UBSAN_OPTIONS", "print_stacktrace=1")
    env = tool_env()
    assert not {"LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS"} & set(env)
    assert env["PATH"] == os.environ["PATH"]


def test_redis_url_a_real_client_uses_it(redis_url):
    assert _roundtrip(redis_url) == b"value \x00\xff"


def test_redis_url_leaves_a_key(redis_url, redis_server):
    redis_server.cli("SET", "fixture:left-behind", "1")
    assert redis_server.cli("DBSIZE") == "1"


def test_redis_url_starts_with_an_empty_database(redis_url, redis_server):
    # runs after test_redis_url_leaves_a_key: the fixture flushed what that test left
    assert redis_server.cli("DBSIZE") == "0"


def test_kill_resets_clients_and_restart_comes_back_empty(fresh_redis_server):
    srv = fresh_redis_server
    port, pid = srv.port, srv.pid
    srv.cli("SET", "fixture:k", "v")
    held = srv.connect()
    srv.kill()
    assert srv.proc.returncode == -signal.SIGKILL  # a crash: no shutdown of its own
    assert _gone(pid) and not srv.alive() and not srv.ping()
    assert _closed(held)  # the connection a client held is closed
    held.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    srv.restart()
    assert srv.port == port and srv.pid != pid and srv.ping()
    assert srv.cli("EXISTS", "fixture:k") == "0"


def test_graceful_stop_saves_nothing_for_the_restart(fresh_redis_server):
    # Redis saves on SIGTERM when save points are set; ours has none, so a restart is empty
    srv = fresh_redis_server
    srv.cli("SET", "fixture:k", "v")
    assert srv.stop() == 0
    assert not srv.alive()
    srv.start()
    assert srv.cli("DBSIZE") == "0"
    assert not list(srv.workdir.glob("*.rdb")) and not list(srv.workdir.glob("appendonly*"))


def test_killing_a_fresh_server_leaves_the_session_one(redis_server, fresh_redis_server):
    assert fresh_redis_server.port != redis_server.port
    fresh_redis_server.kill()
    assert redis_server.ping()


def test_freeze_holds_replies_until_thaw(fresh_redis_server):
    srv = fresh_redis_server
    conn = srv.connect(timeout=10)
    srv.freeze()
    try:
        poll(lambda: _state(srv.pid), lambda st: st == "T", what="the stopped state")
        assert not srv.ping(timeout=0.2)
        conn.sendall(b"PING\r\n")
    finally:
        srv.thaw()
    assert conn.recv(64) == b"+PONG\r\n"
    conn.close()


def test_disconnect_clients_keeps_the_server(fresh_redis_server):
    srv = fresh_redis_server
    held = [srv.connect() for _ in range(3)]
    for s in held:  # a round trip each, so the server has surely registered them
        s.sendall(b"PING\r\n")
        assert s.recv(16) == b"+PONG\r\n"
    assert len(srv.clients()) == 3
    assert srv.disconnect_clients() == 3
    assert all(_closed(s) for s in held)
    assert srv.alive() and srv.clients() == []
    for s in held:
        s.close()


@pytest.fixture
def pids_gone_afterwards():
    """Set up before make_redis_server, so this teardown runs after that one's."""
    pids = []
    yield pids
    assert pids and [p for p in pids if not _gone(p)] == [], "a redis-server outlived its test"


def test_make_redis_server_stops_its_servers_at_teardown(pids_gone_afterwards, make_redis_server):
    for kind in ("tcp", "unix"):
        srv = make_redis_server(kind=kind)
        pids_gone_afterwards.append(srv.pid)
        assert srv.ping()


def test_password_server(make_redis_server):
    srv = make_redis_server(password="s3cr:t/")
    assert srv.url == f"redis://:s3cr%3At%2F@127.0.0.1:{srv.port}/0"
    with srv.connect() as s:
        s.sendall(b"PING\r\n")
        assert s.recv(128).startswith(b"-NOAUTH")
    assert srv.ping() and srv.cli("PING") == "PONG"
    assert _roundtrip(srv.url) == b"value \x00\xff"


def test_extra_args(make_redis_server):
    srv = make_redis_server(args=["--maxclients", "7"])
    assert srv.cli("CONFIG", "GET", "maxclients").splitlines() == ["maxclients", "7"]


def test_tls_server(redis_tls_server):
    srv = redis_tls_server
    assert srv.url == f"rediss://127.0.0.1:{srv.port}/0"
    assert srv.ping() and srv.cli("PING") == "PONG"
    # the port speaks TLS only, and only plain TCP is off
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        assert _closed(s)
    assert srv.cli("CONFIG", "GET", "port").splitlines() == ["port", "0"]
    # a client that does not trust the test CA is refused
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(s, server_hostname="127.0.0.1")
    files = srv.tls_files
    assert _roundtrip(srv.url, ssl_ca_certs=files.ca_file) == b"value \x00\xff"


def test_tls_server_with_client_certificates(make_redis_server):
    srv = make_redis_server(kind="tls", tls_auth_clients="yes")
    assert srv.ping() and srv.cli("PING") == "PONG"  # both present the client certificate
    assert _refused_without_client_certificate(srv)
    f = srv.tls_files
    assert _roundtrip(srv.url, ssl_ca_certs=f.ca_file, ssl_certfile=f.client_cert_file,
                      ssl_keyfile=f.client_key_file) == b"value \x00\xff"


def _refused_without_client_certificate(srv) -> bool:
    """A client that trusts the CA but shows no certificate: refused at the handshake, or (TLS
    1.3, where the server checks after its Finished) on the first write or read."""
    ctx = ssl.create_default_context(cafile=srv.tls_files.ca_file)
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"PING\r\n")
                return s.recv(64) == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True


def test_unix_server(redis_unix_server):
    srv = redis_unix_server
    assert srv.port == 0 and stat.S_ISSOCK(os.stat(srv.path).st_mode)
    assert srv.url == f"unix://{srv.path}?db=0"
    assert srv.cli("CONFIG", "GET", "port").splitlines() == ["port", "0"]
    assert srv.ping() and srv.cli("PING") == "PONG"
    assert _roundtrip(srv.url) == b"value \x00\xff"


def test_unix_server_restarts_on_the_same_path(make_redis_server):
    srv = make_redis_server(kind="unix")
    path = srv.path
    srv.kill()
    assert not srv.ping()
    srv.restart()
    assert srv.path == path and srv.ping()


def test_bad_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="tcp, tls or unix"):
        RedisServer(tmp_path, kind="udp")

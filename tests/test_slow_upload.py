"""A body that arrives slowly costs the server no CPU while a pool thread waits for it: the
thread is woken when bytes arrive, not each time the connection's output drains (which had the
pool thread and the loop wake each other for the whole upload).  CPU time of the server
process is measured, not elapsed time."""
import os
import time

import pytest

from conftest import NATIVE_APP_DIR, RawConn, serve

BODY = b"0123456789" * 3   # sent a byte at a time
GAP = 0.05                 # between bytes: the upload lasts about 1.5 s
CPU_BUDGET = 0.5           # seconds of server CPU for the whole upload (a livelock uses ~all)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def slow_upload(srv, target):
    with RawConn(srv.port) as c:
        c.send(b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
               b"Content-Type: application/octet-stream\r\n\r\n" % (target.encode(), len(BODY)))
        time.sleep(GAP)
        before = cpu_seconds(srv.proc.pid)
        for i in range(len(BODY)):
            c.send(BODY[i:i + 1])
            time.sleep(GAP)
        r = c.read_response()
        used = cpu_seconds(srv.proc.pid) - before
    return r, used


def test_wsgi_app_waiting_for_a_slow_body_uses_no_cpu():
    with serve("wsgi_app:app", "--interface", "wsgi") as srv:
        r, used = slow_upload(srv, "/echo")
    assert r.status == 200 and r.json()["body"] == BODY.decode()
    assert used < CPU_BUDGET, f"the server used {used:.2f} s of CPU during a slow upload"


def test_sync_resource_waiting_for_a_slow_body_uses_no_cpu():
    with serve("environ_app:app", "--app-dir", NATIVE_APP_DIR) as srv:
        r, used = slow_upload(srv, "/upload")
    assert r.status == 200 and r.json() == {"size": len(BODY)}
    assert used < CPU_BUDGET, f"the server used {used:.2f} s of CPU during a slow upload"

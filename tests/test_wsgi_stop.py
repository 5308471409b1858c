"""Stopping a WSGI server with requests queued for the thread pool (more requests than
--threads, all blocked): each queued request's connection is closed, and the exchanges the
queue held are released, so none is left alive when the process exits (the test app reports
the count at exit)."""
import re
import signal

from conftest import _LIVE, RawConn, request_bytes, serve, wait_for


def test_stop_releases_the_requests_queued_for_the_pool(tmp_path):
    with serve("lifecycle_app:wsgi", "--interface", "wsgi", "--threads", "2",
               "--timeout-graceful", "0.5", "--no-access-log",
               env={"LIFECYCLE_DIR": str(tmp_path)}) as srv:
        conns = []
        for i in range(5):     # two run (blocked in the app), three wait in the queue
            c = RawConn(srv.port, timeout=15)
            c.send(request_bytes("GET", f"/block?id={i}"))
            conns.append(c)
        wait_for(lambda: srv.alive() and len(conns) == 5, "requests sent")
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.wait_log(r"cancelling 5 connection"), srv.log[-2000:]
        for c in conns:
            data, closed = c.read_until_close(timeout=15)
            assert closed and data == b"", data[:200]
            c.close()
        (tmp_path / "release").write_text("")   # the two blocked threads return
        assert srv.proc.wait(30) == 0, srv.log[-3000:]
        _LIVE.discard(srv)    # it exited as asked: not a crash for serve() to report
        assert srv.wait_log(r"exchanges alive at exit: \d+"), srv.log[-2000:]
        alive = int(re.search(r"exchanges alive at exit: (\d+)", srv.log).group(1))
        assert alive == 0, srv.log[-3000:]

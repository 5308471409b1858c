"""Load and probes: wrk runs and their parsing, one-off checked requests, and the client that
holds thousands of idle keep-alive connections open."""

import http.client
import re
import select
import selectors
import socket
import subprocess
import time

from . import procs
from .procs import HOST

WRK_CPU = 1  # the core wrk (and this runner) use; servers get core 0

_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZE = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


class WrkError(Exception):
    pass


def parse_wrk(text):
    """requests/s, p99 and errors from `wrk --latency` output (wrk 4.x text format)."""

    def find(pattern):
        m = re.search(pattern, text, re.M)
        return m

    rps = find(r"^Requests/sec:\s+([\d.]+)")
    if rps is None:
        raise WrkError("no 'Requests/sec' in wrk output:\n" + text.strip())
    out = {"rps": float(rps.group(1))}
    p99 = find(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$")
    p50 = find(r"^\s*50%\s+([\d.]+)(us|ms|s|m|h)\s*$")
    out["p99_ms"] = float(p99.group(1)) * _UNIT_MS[p99.group(2)] if p99 else None
    out["p50_ms"] = float(p50.group(1)) * _UNIT_MS[p50.group(2)] if p50 else None
    total = find(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)([KMGT]?B) read")
    if total:
        out["requests"] = int(total.group(1))
        out["seconds"] = float(total.group(2)) * _UNIT_MS[total.group(3)] / 1e3
        out["bytes_read"] = int(float(total.group(4)) * _SIZE[total.group(5)])
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}
    sock = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    if sock:
        for key, value in zip(("connect", "read", "write", "timeout"), sock.groups()):
            errors[key] = int(value)
    status = find(r"Non-2xx or 3xx responses: (\d+)")
    if status:
        errors["status"] = int(status.group(1))
    out["errors"] = errors
    out["error_total"] = sum(errors.values())
    return out


def run_wrk(url, *, connections, duration, threads=1, lua=None, timeout_s=5):
    """One bounded wrk run pinned to WRK_CPU; returns the parsed figures plus wrk's CPU use."""
    duration = max(1, round(duration))  # wrk takes whole seconds
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s"]
    argv += ["--latency", "--timeout", f"{timeout_s}s"]
    if lua:
        argv += ["-s", str(lua)]
    argv.append(url)
    cpu_before = procs.children_cpu_seconds()
    proc = procs.spawn(argv, cpu=WRK_CPU, stdout=subprocess.PIPE)
    wrk_cpus = procs.affinity(proc.pid)  # taskset has already exec'd wrk or is about to
    try:
        out, _ = proc.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        procs.stop(proc, grace=1)
        raise WrkError(f"wrk did not finish within {duration + 30} s")
    except BaseException:  # Ctrl-C, SIGTERM: never leave a load generator running
        procs.stop(proc, grace=1)
        raise
    procs.forget(proc)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        last = text.strip().splitlines()[:1] or [""]
        raise WrkError(f"wrk exited with {proc.returncode}: {last[0]}\n{text.strip()}")
    result = parse_wrk(text)
    result["wrk_cpu"] = (procs.children_cpu_seconds() - cpu_before) / duration
    result["wrk_cpus"] = wrk_cpus
    result["raw"] = text
    return result


# ---------------------------------------------------------------------------------------------
# One checked request (readiness and correctness probe)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body


def request(port, method="GET", path="/", body=None, headers=None, timeout=10.0):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Idle keep-alive connections


def _response_complete(buf):
    """True once buf holds a whole HTTP/1.1 response with a Content-Length body."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = buf[:end].decode("latin-1").lower()
    m = re.search(r"^content-length:\s*(\d+)", head, re.M)
    if not m:
        raise ValueError("response without content-length: " + head.splitlines()[0])
    if not head.startswith("http/1.1 2"):
        raise ValueError("unexpected status: " + head.splitlines()[0])
    return len(buf) - end - 4 >= int(m.group(1))


def open_idle_connections(port, count, path="/", in_flight=200, timeout=60.0):
    """Open `count` connections, make one keep-alive request on each, keep them open.

    At most `in_flight` connections are being set up at a time so no listen backlog overflows.
    Returns (open sockets, list of failure strings).
    """
    request_bytes = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    done, failures = [], []
    started = 0
    deadline = time.monotonic() + timeout
    try:
        while len(done) + len(failures) < count:
            if time.monotonic() > deadline:
                waiting = len(sel.get_map())
                failures += [f"no answer within {timeout:.0f} s"] * waiting
                failures += ["never started (client timed out)"] * (count - started)
                break
            while started < count and len(sel.get_map()) < in_flight:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex((HOST, port))
                sel.register(s, selectors.EVENT_WRITE, bytearray())
                started += 1
            for key, events in sel.select(timeout=1.0):
                s, buf = key.fileobj, key.data
                try:
                    if events & selectors.EVENT_WRITE:
                        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            raise OSError(err, "connect failed")
                        s.sendall(request_bytes)  # tiny: fits the empty send buffer
                        sel.modify(s, selectors.EVENT_READ, buf)
                        continue
                    data = s.recv(65536)
                    if not data:
                        raise ConnectionError("closed by server before the response ended")
                    buf += data
                    if _response_complete(buf):
                        sel.unregister(s)
                        done.append(s)
                except (OSError, ValueError) as e:
                    sel.unregister(s)
                    s.close()
                    failures.append(str(e))
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()
    return done, failures


def count_alive(socks):
    """How many sockets the server has not closed (no EOF/HUP/data pending on them)."""
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN | select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    dead = len(poller.poll(0))
    return len(socks) - dead


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass

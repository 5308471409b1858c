"""redis-server processes started by the tests: on a free port (never the machine's 6379),
TCP, TLS or a Unix socket, each in its own directory, with nothing written to disk.

Used through the fixtures in conftest.py (section "Redis"); tests that need a special server
(a password, several servers, extra settings) call `make_redis_server(...)` from there.

  RedisServer      one process: .host .port .path .url .tls .pid, start/stop/kill/restart,
                   freeze/thaw (SIGSTOP/SIGCONT), ping, cli(*args), info(), clients(),
                   disconnect_clients(), flushall()
  TlsFiles         a CA, a server and a client certificate made with the `openssl` CLI
  make_tls_files   writes them into a directory
Every process started here is killed at teardown and, as a last resort, at interpreter exit.
"""
from __future__ import annotations

import atexit
import os
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import quote

HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # seconds for redis-server to answer PING (a safety net, never asserted)
STOP_TIMEOUT = 10.0   # seconds between SIGTERM and SIGKILL
PORT_TRIES = 5        # a free port can be taken by someone else before redis-server binds it

_LIVE: set = set()


def _kill_leftovers() -> None:
    for srv in list(_LIVE):
        srv.kill()


atexit.register(_kill_leftovers)


def tool_env() -> dict:
    """The environment for redis-server, redis-cli and openssl: without the sanitizer runtime
    that `make test-asan` preloads into the test processes (it is not theirs to load)."""
    env = dict(os.environ)
    for key in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        env.pop(key, None)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# TLS material
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TlsFiles:
    ca_file: str          # the CA that signed both certificates (clients verify with it)
    cert_file: str        # the server certificate: CN localhost, SAN DNS:localhost, IP:127.0.0.1
    key_file: str
    client_cert_file: str  # for servers started with tls_auth_clients="yes"
    client_key_file: str


def _openssl(workdir: Path, *args: str) -> None:
    r = subprocess.run(["openssl", *args], cwd=workdir, env=tool_env(),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {r.stderr.strip()}")


def make_tls_files(workdir: Path) -> TlsFiles:
    """A throwaway CA, then a server and a client certificate it signs (P-256 keys, 2 days)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(workdir, "req", "-x509", "-new", *ec, "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=flask-restful-async test CA")
    for name, usage, san in (("server", "serverAuth", "DNS:localhost,IP:127.0.0.1"),
                             ("client", "clientAuth", None)):
        ext = workdir / f"{name}.ext"
        ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                       f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else ""))
        _openssl(workdir, "req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={'localhost' if name == 'server' else 'test client'}")
        _openssl(workdir, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey",
                 "ca.key", "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
                 "-extfile", str(ext))
    return TlsFiles(str(workdir / "ca.crt"), str(workdir / "server.crt"),
                    str(workdir / "server.key"), str(workdir / "client.crt"),
                    str(workdir / "client.key"))


# --------------------------------------------------------------------------------------------
# One redis-server process
# --------------------------------------------------------------------------------------------

class RedisServer:
    """A redis-server the tests own.  `kind` is "tcp", "tls" or "unix"; `url` is what
    `Redis.from_url` takes (redis://, rediss://, unix://), with the password if there is one."""

    def __init__(self, workdir: Path, *, kind: str = "tcp", password: Optional[str] = None,
                 tls_files: Optional[TlsFiles] = None, tls_auth_clients: str = "no",
                 args: Sequence[str] = ()):
        if kind not in ("tcp", "tls", "unix"):
            raise ValueError(f"kind must be tcp, tls or unix, not {kind!r}")
        if kind == "tls" and tls_files is None:
            raise ValueError("a TLS server needs tls_files (make_tls_files)")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.host = HOST
        self.port = 0  # the TCP or TLS port; 0 for a Unix-socket server
        self.path: Optional[str] = None  # the Unix socket
        self.password = password
        self.tls_files = tls_files
        self.tls_auth_clients = tls_auth_clients
        self.extra_args = [str(a) for a in args]
        self.proc: Optional[subprocess.Popen] = None
        self.logfile = self.workdir / "redis.log"
        if kind == "unix":
            self.path = str(self.workdir / "redis.sock")
            if len(self.path.encode()) > 100:  # sun_path holds 108 bytes
                raise ValueError(f"Unix socket path too long for sun_path: {self.path}")

    # -- identity ---------------------------------------------------------------------------

    @property
    def tls(self) -> bool:
        return self.kind == "tls"

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.kind == "unix":
            return f"unix://{auth}{self.path}?db=0"
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}{self.host}:{self.port}/0"

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} pid={self.pid}>"

    # -- life cycle -------------------------------------------------------------------------

    def argv(self) -> list:
        cmd = ["redis-server", "--bind", HOST, "--save", "", "--appendonly", "no",
               "--dir", str(self.workdir), "--logfile", str(self.logfile),
               "--daemonize", "no", "--enable-debug-command", "yes"]
        if self.kind == "tcp":
            cmd += ["--port", str(self.port)]
        elif self.kind == "tls":
            f = self.tls_files
            cmd += ["--port", "0", "--tls-port", str(self.port),
                    "--tls-cert-file", f.cert_file, "--tls-key-file", f.key_file,
                    "--tls-ca-cert-file", f.ca_file, "--tls-auth-clients", self.tls_auth_clients]
        else:
            cmd += ["--port", "0", "--unixsocket", self.path, "--unixsocketperm", "700"]
        if self.password:
            cmd += ["--requirepass", self.password]
        return cmd + self.extra_args

    def start(self) -> "RedisServer":
        """Start on a free port (the same one again after stop/kill) and wait for PING."""
        if self.alive():
            raise RuntimeError(f"{self!r} is already running")
        keep_port = self.port != 0
        for _ in range(1 if keep_port or self.kind == "unix" else PORT_TRIES):
            if not keep_port and self.kind != "unix":
                self.port = free_port()
            if self._launch():
                return self
        raise RuntimeError(f"redis-server did not start ({self.argv()}):\n{self._tail()}")

    def _launch(self) -> bool:
        self.proc = subprocess.Popen(self.argv(), env=tool_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        _LIVE.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _LIVE.discard(self)
                return False  # most often: the port was taken meanwhile (the log says)
            if self.ping():
                return True
            time.sleep(0.01)
        self.kill()
        raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT:.0f} s:\n"
                           + self._tail())

    def _tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.splitlines()[-lines:]) or "(empty log)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled cable would: clients see their connections reset."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self._signal(signal.SIGCONT)  # a frozen process dies the same, reaped sooner
                self._signal(signal.SIGKILL)
            self.proc.wait()
        _LIVE.discard(self)

    def stop(self) -> int:
        """SIGTERM: Redis's own shutdown (it closes client connections); returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self._signal(signal.SIGCONT)
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        _LIVE.discard(self)
        return self.proc.returncode

    def restart(self, graceful: bool = False) -> "RedisServer":
        """Kill (or stop, if graceful) and start again on the same port or socket, empty."""
        if graceful:
            self.stop()
        else:
            self.kill()
        return self.start()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open but nothing is answered (for timeout tests)."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, sig: int) -> None:
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    # -- talking to it ----------------------------------------------------------------------

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """A raw connected socket (TLS-wrapped and verified against the test CA for "tls")."""
        if self.kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(self.path)
            except OSError:
                s.close()
                raise
            return s
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        if not self.tls:
            return s
        ctx = ssl.create_default_context(cafile=self.tls_files.ca_file)
        if self.tls_auth_clients != "no":
            ctx.load_cert_chain(self.tls_files.client_cert_file, self.tls_files.client_key_file)
        try:
            return ctx.wrap_socket(s, server_hostname=self.host)
        except (OSError, ssl.SSLError):
            s.close()
            raise

    def ping(self, timeout: float = 1.0) -> bool:
        """True if the server answers PING (authenticating first when it has a password)."""
        try:
            with self.connect(timeout) as s:
                cmd = b"PING\r\n"
                if self.password:
                    cmd = b"AUTH " + self.password.encode() + b"\r\n" + cmd
                s.sendall(cmd)
                data = b""
                while data.count(b"\r\n") < cmd.count(b"\r\n"):
                    chunk = s.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
                return data.endswith(b"+PONG\r\n")
        except (OSError, ssl.SSLError):
            return False

    def cli_argv(self) -> list:
        cmd = ["redis-cli", "-e"]  # -e: an error reply makes redis-cli exit non-zero
        if self.kind == "unix":
            cmd += ["-s", self.path]
        else:
            cmd += ["-h", self.host, "-p", str(self.port)]
        if self.tls:
            cmd += ["--tls", "--cacert", self.tls_files.ca_file]
            if self.tls_auth_clients != "no":
                cmd += ["--cert", self.tls_files.client_cert_file,
                        "--key", self.tls_files.client_key_file]
        return cmd

    def cli(self, *args, check: bool = True) -> str:
        """Run `redis-cli ARGS` against this server; its output without the last newline.
        Raises RuntimeError on an error reply or a failed connection (unless check=False)."""
        env = tool_env()
        if self.password:
            env["REDISCLI_AUTH"] = self.password  # not on the command line: no warning printed
        r = subprocess.run(self.cli_argv() + [str(a) for a in args], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        out = r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout
        if check and r.returncode != 0:
            raise RuntimeError(f"redis-cli {' '.join(map(str, args))}: exit {r.returncode}: "
                               f"{(out + r.stderr).strip()}")
        return out

    def info(self, section: str = "") -> dict:
        """INFO as a dict of strings (`info("clients")["connected_clients"]`)."""
        out = {}
        for line in self.cli("INFO", *([section] if section else [])).splitlines():
            if ":" in line and not line.startswith("#"):
                key, value = line.split(":", 1)
                out[key] = value.strip()
        return out

    def clients(self) -> list:
        """CLIENT LIST as dicts, without the redis-cli connection asking."""
        rows = []
        for line in self.cli("CLIENT", "LIST").splitlines():
            row = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if row.get("cmd") != "client|list":
                rows.append(row)
        return rows

    def disconnect_clients(self) -> int:
        """Close every normal client connection (the server stays up); how many were closed."""
        return int(self.cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes") or 0)

    def flushall(self) -> None:
        self.cli("FLUSHALL")

"""Files fetched with curl, the client people use to resume downloads: single ranges
(`-r 0-99`, `-r 100-`, `-r -500`), several ranges (multipart/byteranges), and a download that
was cut off and is resumed with `--continue-at -`.  Every byte is compared with the file (random
data, several MB).  On our server and, for the same app, on uvicorn.  The app is
tests/apps_api/streaming_app.py (GET /files/<path>: send_from_directory)."""
import os
import re
import shutil
import subprocess

import pytest

from _redis_server import tool_env
from conftest import serve_streaming_app

CURL = shutil.which("curl") or "curl"  # (Debian's curl: `make test` installs it)

SIZE = 5 * 1024 * 1024 + 12345  # several MB, not a multiple of anything
CURL_TIMEOUT = 60  # seconds: a safety net for a hung server, never a measurement


@pytest.fixture(scope="module")
def data():
    return os.urandom(SIZE)


@pytest.fixture(scope="module", params=["ours", "uvicorn"])
def server(request, tmp_path_factory, data):
    files = tmp_path_factory.mktemp("curlfiles")
    (files / "random.bin").write_bytes(data)
    env = {"FRA_TEST_FILES": str(files), "FRA_TEST_LOG": str(files / "app.log")}
    with serve_streaming_app(request.param, env=env) as srv:
        srv.url = f"http://127.0.0.1:{srv.port}/files/random.bin"
        yield srv


def curl(tmp_path, *args, name="out"):
    """Run curl; (status, headers as {lower name: value}, body bytes)."""
    body, head = tmp_path / (name + ".body"), tmp_path / (name + ".head")
    proc = subprocess.run(env=tool_env(), args=[CURL, "-s", "-S", "-D", str(head), "-o", str(body), *args],
                          capture_output=True, timeout=CURL_TIMEOUT)
    assert proc.returncode == 0, proc.stderr.decode()
    return _head(head.read_bytes()) + (body.read_bytes(),)


def _head(raw):
    """The last response's status and headers (curl -D may hold a 100 Continue first)."""
    blocks = [b for b in raw.split(b"\r\n\r\n") if b.strip()]
    lines = blocks[-1].decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


def test_whole_file(server, data, tmp_path):
    status, headers, body = curl(tmp_path, server.url)
    assert status == 200 and body == data
    assert headers.get("accept-ranges") == "bytes"


def test_first_bytes(server, data, tmp_path):
    status, headers, body = curl(tmp_path, "-r", "0-99", server.url)
    assert status == 206
    assert headers["content-range"] == f"bytes 0-99/{SIZE}"
    assert body == data[:100]


def test_from_an_offset_to_the_end(server, data, tmp_path):
    status, headers, body = curl(tmp_path, "-r", "100-", server.url)
    assert status == 206
    assert headers["content-range"] == f"bytes 100-{SIZE - 1}/{SIZE}"
    assert body == data[100:]


def test_last_bytes(server, data, tmp_path):
    status, headers, body = curl(tmp_path, "-r", "-500", server.url)
    assert status == 206
    assert headers["content-range"] == f"bytes {SIZE - 500}-{SIZE - 1}/{SIZE}"
    assert body == data[-500:]


def test_several_ranges_as_multipart_byteranges(server, data, tmp_path):
    wanted = [(0, 9), (1000, 1999), (SIZE - 300, SIZE - 1)]
    spec = ",".join(f"{a}-{b}" for a, b in wanted)
    status, headers, body = curl(tmp_path, "-r", spec, server.url)
    assert status == 206
    m = re.match(r'multipart/byteranges;\s*boundary="?([^";]+)"?', headers["content-type"])
    assert m, headers["content-type"]
    boundary = m.group(1).encode()
    assert int(headers["content-length"]) == len(body)
    parts = body.split(b"--" + boundary)
    assert parts[-1].strip() == b"--"  # the closing delimiter ends the body
    got = []
    for part in parts[1:-1]:
        head, _, payload = part.partition(b"\r\n\r\n")
        assert payload.endswith(b"\r\n")
        payload = payload[:-2]
        fields = dict(line.split(b":", 1) for line in head.strip().split(b"\r\n"))
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        first, last = map(int, re.match(rb"bytes (\d+)-(\d+)/%d" % SIZE,
                                        fields[b"content-range"]).groups())
        assert payload == data[first:last + 1]
        got.append((first, last))
    assert got == wanted


def test_interrupted_download_is_resumed(server, data, tmp_path):
    target = tmp_path / "download.bin"
    cut = SIZE // 3 + 7
    # The first attempt ends early (as if the connection had dropped): the first `cut` bytes
    subprocess.run(env=tool_env(), args=[CURL, "-s", "-S", "-r", f"0-{cut - 1}", "-o", str(target), server.url],
                   check=True, timeout=CURL_TIMEOUT)
    assert target.read_bytes() == data[:cut]
    # ... then curl continues where the file ends (it asks for Range: bytes=<cut>-)
    proc = subprocess.run(env=tool_env(), args=[CURL, "-s", "-S", "-C", "-", "-o", str(target), "-w", "%{http_code}",
                           server.url], capture_output=True, timeout=CURL_TIMEOUT)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"206"
    assert target.read_bytes() == data


def test_resume_of_a_complete_file_is_refused_without_damage(server, data, tmp_path):
    target = tmp_path / "complete.bin"
    target.write_bytes(data)
    proc = subprocess.run(env=tool_env(), args=[CURL, "-s", "-C", "-", "-o", str(target), "-w", "%{http_code}",
                           server.url], capture_output=True, timeout=CURL_TIMEOUT)
    # bytes=SIZE- is past the end: 416, which curl takes as "already complete"
    assert proc.stdout == b"416"
    assert target.read_bytes() == data

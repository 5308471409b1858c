"""Plain WSGI (PEP 3333) apps, one per scenario, served unchanged by every WSGI server."""

HELLO = b'{"hello":"world"}'
HELLO_HEADERS = [("Content-Type", "application/json"), ("Content-Length", "17")]

CHUNK = b"x" * (64 * 1024)
DOWNLOAD_CHUNKS = 160  # 10 MiB
DOWNLOAD_HEADERS = [
    ("Content-Type", "application/octet-stream"),
    ("Content-Length", str(len(CHUNK) * DOWNLOAD_CHUNKS)),
]


def hello(environ, start_response):
    start_response("200 OK", HELLO_HEADERS)
    return [HELLO]


def upload(environ, start_response):
    """Reads the whole request body (in 64 KiB reads) and answers with its size."""
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    size = 0
    while remaining > 0:
        data = stream.read(min(remaining, 65536))
        if not data:
            break
        size += len(data)
        remaining -= len(data)
    body = b'{"received":%d}' % size
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _chunks():
    for _ in range(DOWNLOAD_CHUNKS):
        yield CHUNK


def download(environ, start_response):
    """Streams 10 MiB as an iterable of 64 KiB chunks."""
    start_response("200 OK", DOWNLOAD_HEADERS)
    return _chunks()

"""Raw ASGI 3 apps, one per scenario, served unchanged by every ASGI server in the suite.

Each attribute is a complete app.  They answer the lifespan scope properly so that no server
logs a lifespan failure, and otherwise do only what the scenario measures.
"""

import asyncio

HELLO = b'{"hello":"world"}'
HELLO_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"17")]
HELLO_START = {"type": "http.response.start", "status": 200, "headers": HELLO_HEADERS}
HELLO_BODY = {"type": "http.response.body", "body": HELLO}

CHUNK = b"x" * (64 * 1024)
DOWNLOAD_CHUNKS = 160  # 160 * 64 KiB = 10 MiB
DOWNLOAD_SIZE = len(CHUNK) * DOWNLOAD_CHUNKS
DOWNLOAD_HEADERS = [
    (b"content-type", b"application/octet-stream"),
    (b"content-length", str(DOWNLOAD_SIZE).encode()),
]


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await send(HELLO_START)
    await send(HELLO_BODY)


async def io10(scope, receive, send):
    """Stands for a handler awaiting 10 ms of I/O (a database, another service)."""
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await asyncio.sleep(0.010)
    await send(HELLO_START)
    await send(HELLO_BODY)


async def upload(scope, receive, send):
    """Reads the whole request body and answers with the number of bytes received."""
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    size = 0
    more = True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = b'{"received":%d}' % size
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def download(scope, receive, send):
    """Streams 10 MiB in 64 KiB body messages (more_body=True), as a file response would."""
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await send({"type": "http.response.start", "status": 200, "headers": DOWNLOAD_HEADERS})
    message = {"type": "http.response.body", "body": CHUNK, "more_body": True}
    for _ in range(DOWNLOAD_CHUNKS - 1):
        await send(message)
    await send({"type": "http.response.body", "body": CHUNK, "more_body": False})

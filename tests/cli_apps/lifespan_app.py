"""Raw ASGI apps that speak lifespan and record each phase in $CLI_TEST_DIR/events."""
import json

from _control import record


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["token"] = "set-at-startup"
                record("startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                record("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.dumps({"token": scope.get("state", {}).get("token")}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def failing(scope, receive, send):
    """Startup fails with a message."""
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "database unreachable (test)"})


async def raising(scope, receive, send):
    """Startup raises after receiving lifespan.startup."""
    assert scope["type"] == "lifespan"
    await receive()
    raise ConnectionError("cache unreachable (test)")

"""A raw ASGI app that reports the garbage collector's settings as the worker left them
(gc_own_app.py is the same app setting its own thresholds at import)."""
import gc
import json


async def app(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']}")
    body = json.dumps({"threshold": list(gc.get_threshold()), "frozen": gc.get_freeze_count(),
                       "enabled": gc.isenabled()}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


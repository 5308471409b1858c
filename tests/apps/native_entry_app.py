"""A bare native entry (served with --interface native): what the server calls for each
request when it serves flask_restful_async's own Api (server_app.ServerApp, a callable taking
the exchange), here without Flask, so tests/test_client_disconnected.py checks the exchange's
own calls.

  /respond-after-gone?id=K[&catch=1]   waits until the client has gone, then respond();
                                        STATE[K] = what respond() raised (with catch=1)
  /fail?id=K                            raises RuntimeError("native-entry-boom K")
  /__state__?id=K                       {"value": STATE.get(K)}
"""
import asyncio
import json
from urllib.parse import parse_qs

STATE = {}


def _params(ex):
    return {k: v[-1] for k, v in parse_qs(ex.scope()["query_string"].decode()).items()}


async def handle(ex):
    p = _params(ex)
    if ex.path == "/__state__":
        ex.respond(200, b"application/json", json.dumps({"value": STATE.get(p["id"])}))
    elif ex.path == "/respond-after-gone":
        key = p["id"]
        STATE[key] = "waiting"
        while not ex.disconnected:
            await asyncio.sleep(0.002)
        STATE[key] = "gone"
        if p.get("catch") != "1":
            ex.respond(200, b"text/plain", "nobody reads this")  # raises: the server's to handle
            return
        try:
            ex.respond(200, b"text/plain", "nobody reads this")
            STATE[key] = "sent"
        except OSError as exc:
            STATE[key] = type(exc).__name__
    elif ex.path == "/fail":
        raise RuntimeError("native-entry-boom " + p["id"])
    else:
        ex.respond(404, b"text/plain", "no such path")


app = handle

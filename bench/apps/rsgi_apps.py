"""Granian's native RSGI protocol: the same responses as asgi_apps, shown for reference only.

RSGI is Granian-specific, so these rows are not used in any target check; they show how much of
Granian's time goes to the ASGI translation layer.
"""

import asyncio

HELLO = b'{"hello":"world"}'
HELLO_HEADERS = [("content-type", "application/json"), ("content-length", "17")]


async def hello(scope, protocol):
    protocol.response_bytes(200, HELLO_HEADERS, HELLO)


async def io10(scope, protocol):
    await asyncio.sleep(0.010)
    protocol.response_bytes(200, HELLO_HEADERS, HELLO)

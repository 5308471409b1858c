"""Resources both native test apps serve (each app passes its own event recorder)."""
import asyncio

from flask import request

from flask_restful_async import AsyncResource


def hang_resource(event):
    """A resource that waits until the client leaves (then CancelledError arrives in it),
    recording hang:start/cancelled/finally:<tag> through `event`."""

    class Hang(AsyncResource):
        async def get(self):
            tag = request.args["tag"]
            event("hang:start:" + tag)
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                event("hang:cancelled:" + tag)
                raise
            finally:
                event("hang:finally:" + tag)
            return {"never": True}

    return Hang

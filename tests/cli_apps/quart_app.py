"""A Quart app: its object has both an async ASGI __call__ and a WSGI-looking wsgi_app."""
import os

from quart import Quart

app = Quart(__name__)


@app.get("/")
async def index():
    return {"app": "quart", "pid": os.getpid()}

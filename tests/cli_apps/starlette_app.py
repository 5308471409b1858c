"""A Starlette (ASGI) app."""
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def index(request):
    return JSONResponse({"app": "starlette", "pid": os.getpid()})


app = Starlette(routes=[Route("/", index)])

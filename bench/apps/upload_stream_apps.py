"""A 1 MiB upload read chunk by chunk as it arrives (issue 10): POST / answers
{"received": <bytes>}.  `app` is a Flask app with our Api whose AsyncResource reads the body
with body_chunks() (served natively by our server); `starlette_app` reads it with Starlette's
request.stream() (for uvicorn)."""
from flask import Flask
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from flask_restful_async import Api, AsyncResource
from flask_restful_async.streaming import body_chunks

app = Flask(__name__)
api = Api(app)


class Upload(AsyncResource):
    async def post(self):
        size = 0
        async for chunk in body_chunks():
            size += len(chunk)
        return {"received": size}


api.add_resource(Upload, "/")


async def upload(request):
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return JSONResponse({"received": size})


starlette_app = Starlette(routes=[Route("/", upload, methods=["POST"])])

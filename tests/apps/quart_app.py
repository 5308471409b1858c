"""A Quart app served as ASGI (tests/test_frameworks.py)."""
import asyncio

from quart import Quart, jsonify, request

app = Quart(__name__)
STARTED = {"before_serving": False}


@app.before_serving
async def startup():
    STARTED["before_serving"] = True


@app.route("/hello")
async def hello():
    return jsonify(hello="quart", before_serving=STARTED["before_serving"])


@app.route("/items/<int:item_id>")
async def item(item_id):
    return jsonify(id=item_id, q=request.args.get("q"))


@app.route("/echo", methods=["POST"])
async def echo():
    body = await request.get_data()
    return jsonify(len=len(body), text=body.decode("latin-1"))


@app.route("/json", methods=["POST"])
async def json_in():
    data = await request.get_json()
    return jsonify(got=data)


@app.route("/stream")
async def stream():
    async def gen():
        for i in range(5):
            await asyncio.sleep(0)
            yield f"part{i};".encode()
    return gen(), 200, {"Content-Type": "text/plain"}


@app.route("/sleep")
async def sleep():
    await asyncio.sleep(0.05)
    return "slept"


@app.route("/fail")
async def fail():
    raise RuntimeError("quart-boom")

"""A small Flask app served by `make run`:

    flask-restful-async run examples.app:app --port 8000
    curl localhost:8000/  ·  curl localhost:8000/items/3  ·  curl -d '{"a": 1}' localhost:8000/echo
"""
from flask import Flask, abort, jsonify, request

app = Flask(__name__)

ITEMS = {1: {"id": 1, "name": "apple"}, 2: {"id": 2, "name": "pear"}}


@app.get("/")
def hello():
    return jsonify(message="Hello, world!")


@app.get("/items/<int:item_id>")
def item(item_id: int):
    if item_id not in ITEMS:
        abort(404)
    return jsonify(ITEMS[item_id])


@app.post("/echo")
def echo():
    return jsonify(request.get_json(force=True, silent=True))

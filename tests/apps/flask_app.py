"""A Flask app served as WSGI (tests/test_frameworks.py)."""
import threading

from flask import Flask, Response, abort, jsonify, request, stream_with_context

app = Flask(__name__)


@app.route("/hello")
def hello():
    return jsonify(hello="flask", thread_is_main=threading.current_thread() is threading.main_thread())


@app.route("/items/<int:item_id>")
def item(item_id):
    return jsonify(id=item_id, q=request.args.get("q"))


@app.route("/echo", methods=["POST"])
def echo():
    body = request.get_data()
    return jsonify(len=len(body), text=body.decode("latin-1"))


@app.route("/json", methods=["POST"])
def json_in():
    return jsonify(got=request.get_json())


@app.route("/form", methods=["POST"])
def form():
    files = {k: f.read().decode("latin-1") for k, f in request.files.items()}
    return jsonify(form=request.form.to_dict(), files=files)


@app.route("/stream")
def stream():
    @stream_with_context
    def gen():
        for i in range(5):
            yield f"part{i};{request.args.get('tag', '')}"
    return Response(gen(), mimetype="text/plain")


@app.route("/missing")
def missing():
    abort(404)


@app.errorhandler(404)
def not_found(e):
    return jsonify(error="not found"), 404


@app.route("/fail")
def fail():
    raise RuntimeError("flask-boom")

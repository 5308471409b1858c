"""The package keeps flask-restful's public API, and existing code behaves as before.

Upstream flask-restful 0.3.10 is installed as a test dependency to compare against.
"""
import importlib
import types

import flask
import flask_restful as upstream
import pytest
from flask import Flask

import flask_restful_async as ours

# (.representations itself is empty upstream; its .json module is compared)
MODULES = ["", ".fields", ".reqparse", ".inputs", ".utils", ".utils.cors",
           ".representations.json"]


def _public_names(module: types.ModuleType) -> list:
    """Public names a flask_restful module defines itself (not imported third-party ones)."""
    names = []
    for name in dir(module):
        value = getattr(module, name)
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if getattr(value, "__module__", "flask_restful").startswith("flask_restful"):
            names.append(name)
    return names


@pytest.mark.parametrize("suffix", MODULES)
def test_every_public_name_of_upstream_exists_in_the_same_module(suffix):
    theirs = importlib.import_module("flask_restful" + suffix)
    mine = importlib.import_module("flask_restful_async" + suffix)
    missing = [n for n in _public_names(theirs) if not hasattr(mine, n)]
    assert not missing
    assert _public_names(theirs), "nothing compared"


def test_top_level_exports_and_additions():
    for name in upstream.__all__ + ("fields", "reqparse", "inputs", "representations", "utils"):
        assert hasattr(ours, name), name
    assert issubclass(ours.AsyncResource, ours.Resource)
    assert ours.__version__


def _build(lib, errors=None):
    """One app written against the flask-restful API, built from module `lib`."""
    app = Flask("swap-%s" % lib.__name__)
    api = lib.Api(app, errors=errors or {"Conflict": {"status": 409, "message": "conflict!"}})
    parser = lib.reqparse.RequestParser()
    parser.add_argument("n", type=int, location="args", required=True)
    parser.add_argument("name", location="json")

    def shout(f):
        def wrapper(*args, **kwargs):
            data = f(*args, **kwargs)
            return {k: (v.upper() if isinstance(v, str) else v) for k, v in data.items()}
        return wrapper

    class Conflict(Exception):
        pass

    class Item(lib.Resource):
        method_decorators = {"get": [shout]}
        fields = {"id": lib.fields.Integer, "name": lib.fields.String,
                  "url": lib.fields.Url("item", absolute=True)}

        def get(self, id):
            if id == 0:
                lib.abort(404, message="no item 0")
            if id == 1:
                raise Conflict()
            if id == 2:
                raise ValueError("boom")
            return lib.marshal({"id": id, "name": "item"}, self.fields)

        def post(self, id):
            args = parser.parse_args()
            return {"n": args.n, "name": args.name}, 201, {"X-Made": "yes"}

    class Plain(lib.Resource):
        representations = {"text/plain": lambda data, code, headers:
                           flask.make_response(str(data), code, headers)}

        def get(self):
            return "plain"

    api.add_resource(Item, "/items/<int:id>", endpoint="item")
    api.add_resource(Plain, "/plain")
    return app


REQUESTS = [
    ("get", "/items/7", {}),
    ("get", "/items/0", {}),
    ("get", "/items/1", {}),
    ("get", "/items/2", {}),
    ("head", "/items/7", {}),
    ("delete", "/items/7", {}),
    ("post", "/items/7?n=3", {"json": {"name": "x"}}),
    ("post", "/items/7", {"json": {"name": "x"}}),
    ("post", "/items/7?n=notint", {"json": {"name": "x"}}),
    ("get", "/plain", {"headers": {"Accept": "text/plain"}}),
    ("get", "/plain", {}),
    ("get", "/nowhere", {}),
]


@pytest.mark.parametrize("method,url,kwargs", REQUESTS)
def test_app_that_only_swaps_its_import_behaves_the_same(method, url, kwargs):
    responses = []
    for lib in (upstream, ours):
        client = _build(lib).test_client()
        responses.append(getattr(client, method)(url, **kwargs))
    theirs, mine = responses
    assert mine.status_code == theirs.status_code
    assert mine.data == theirs.data
    assert mine.headers.get("Content-Type") == theirs.headers.get("Content-Type")
    assert mine.headers.get("X-Made") == theirs.headers.get("X-Made")
    assert sorted(mine.headers.get("Allow", "").split(", ")) == \
        sorted(theirs.headers.get("Allow", "").split(", "))


def test_upstream_resource_class_on_our_api_behaves_as_on_stock_api():
    class Hello(upstream.Resource):
        def get(self, name):
            if name == "nobody":
                upstream.abort(404, message="who?")
            return {"hello": name}, 200, {"X-Upstream": "1"}

    results = []
    for lib in (upstream, ours):
        app = Flask("mixed-%s" % lib.__name__)
        lib.Api(app).add_resource(Hello, "/hello/<name>")
        client = app.test_client()
        results.append([(r.status_code, r.data, r.headers.get("X-Upstream"))
                        for r in (client.get("/hello/ann"), client.get("/hello/nobody"),
                                  client.put("/hello/ann"))])
    assert results[0] == results[1]
    assert results[1][0] == (200, b'{"hello": "ann"}\n', "1")

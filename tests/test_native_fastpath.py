"""The native path's shortcuts give what the plain Flask/werkzeug path gives:

* query arguments parsed from the scope without a werkzeug Request (`parse_query_args`,
  `LightRequest` in reqparse) against `flask.Request.args` and the WSGI pipeline, for plain
  ASCII, percent-encoding, '+', non-ASCII and invalid UTF-8 bytes, repeated and blank keys;
* the request made later (user code reading `request` after parse_args) seeing the same
  args and `unparsed_arguments`;
* `marshal` with field classes (one shared instance per class) and with instances;
* the direct JSON encoder against `json.dumps`, errors included.

Requests go through the ASGI callable the server runs (in process, and over real sockets
against the server); nothing asserts on time.
"""
import asyncio
import json
import math
import textwrap
from collections import OrderedDict
from decimal import Decimal

import pytest
from flask import Flask, Request

from conftest import h11_get, serve
from flask_restful_async import fields, marshal
from flask_restful_async import asgi
from flask_restful_async.asgi_environ import environ_from_scope
from flask_restful_async.lazy_context import LazyRequestContext
from flask_restful_async.light_request import LightRequest, parse_query_args
from flask_restful_async.rendering import json_dumps_default

# --------------------------------------------------------------------------------------------
# parse_query_args against flask.Request.args
# --------------------------------------------------------------------------------------------

QUERY_STRINGS = [
    b"", b"verbose=2", b"a=1&b=2&a=3", b"a", b"a=", b"=x", b"=", b"&&a=1&&", b"a=1=2",
    b"a==", b"&", b"a&b&a", b"x=1;y=2", b"name=hello+world", b"n%61me=%41%42",
    b"q=%E2%82%AC", b"q=%e2%82%ac&q=%zz", b"q=%", b"q=%4", b"q=\xe2\x82\xac",
    b"k\xc3\xa9y=v\xc3\xa9", b"q=\xff\xfe", b"q=%ff", b"a+b=c+d", b"a%20b=c%2Bd",
    b"list=1&list=2&list=3&other=&list=", b"sp ace=1", b"tab\t=1", b"%00=%00",
    b"long=" + b"x" * 5000, b"&".join(b"k%d=v%d" % (i, i) for i in range(200)),
]


def _werkzeug_args(query_string):
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": query_string,
             "headers": [], "root_path": "", "server": ("127.0.0.1", 80)}
    return Request(environ_from_scope(scope, b"")).args


@pytest.mark.parametrize("query_string", QUERY_STRINGS)
def test_query_args_match_werkzeug(query_string):
    try:
        expected = _werkzeug_args(query_string)
    except Exception as exc:  # e.g. bytes that are not UTF-8: the same error, both ways
        with pytest.raises(type(exc)):
            parse_query_args(query_string)
        return
    got = parse_query_args(query_string)
    assert type(got) is type(expected)
    assert list(got.items(multi=True)) == list(expected.items(multi=True))
    assert list(got.lists()) == list(expected.lists())
    assert got == expected
    assert got.to_dict() == expected.to_dict()
    for key in expected:
        assert got.getlist(key) == expected.getlist(key)
        assert got[key] == expected[key]
    with pytest.raises(TypeError):
        got["new"] = "x"  # immutable, like werkzeug's
    assert got.copy() == expected.copy()


# --------------------------------------------------------------------------------------------
# An app whose parsers exercise reqparse; native path vs Flask's WSGI pipeline
# --------------------------------------------------------------------------------------------

APP_SOURCE = textwrap.dedent('''
    from flask import Flask, request, g
    from flask_restful_async import Api, AsyncResource, fields, inputs, marshal, reqparse

    app = Flask(__name__)
    api = Api(app)

    args_parser = reqparse.RequestParser()
    args_parser.add_argument("name", location="args")
    args_parser.add_argument("n", type=int, location="args", action="append")
    args_parser.add_argument("flag", type=inputs.boolean, location="args")
    args_parser.add_argument("color", location="args", choices=("red", "green"),
                             case_sensitive=False)
    args_parser.add_argument("trimmed", location="args", trim=True)
    args_parser.add_argument("price", type=float, location="args",
                             operators=[">=", "<=", "="], action="append")
    args_parser.add_argument("missing", location="args", default="dflt")
    args_parser.add_argument("gone", location="args", store_missing=False)
    args_parser.add_argument("q", location="args")

    default_parser = reqparse.RequestParser()
    default_parser.add_argument("q")
    default_parser.add_argument("n", type=int)

    values_parser = reqparse.RequestParser()
    values_parser.add_argument("q", location="values", action="append")

    required_parser = reqparse.RequestParser()
    required_parser.add_argument("need", location="args", required=True)

    bundle_parser = reqparse.RequestParser(bundle_errors=True)
    bundle_parser.add_argument("a", type=int, location="args")
    bundle_parser.add_argument("b", type=int, location="args", required=True)

    strict_parser = reqparse.RequestParser()
    strict_parser.add_argument("known", location="args")


    def plain(namespace):
        return {k: v for k, v in sorted(namespace.items())}


    class Args(AsyncResource):
        async def get(self):
            return plain(args_parser.parse_args())


    class Default(AsyncResource):
        async def get(self):
            return plain(default_parser.parse_args())

        async def post(self):
            return plain(default_parser.parse_args())


    class Values(AsyncResource):
        async def get(self):
            return plain(values_parser.parse_args())

        async def post(self):
            return plain(values_parser.parse_args())


    class Required(AsyncResource):
        async def get(self):
            return plain(required_parser.parse_args())


    class Bundle(AsyncResource):
        async def get(self):
            return plain(bundle_parser.parse_args())


    class Strict(AsyncResource):
        async def get(self):
            return plain(strict_parser.parse_args(strict=True))


    class Readback(AsyncResource):
        """parse_args, then the request itself: args and unparsed_arguments carried over."""

        async def get(self):
            parsed = plain(args_parser.parse_args())
            return {"parsed": parsed, "args": request.args.to_dict(flat=False),
                    "args_type": type(request.args).__name__,
                    "unparsed": request.unparsed_arguments,
                    "values": request.values.to_dict(flat=False),
                    "path": request.path, "full_path": request.full_path}


    class RequestFirst(AsyncResource):
        """The request made before parse_args: the parser reads the real one."""

        async def get(self):
            before = request.args.to_dict(flat=False)
            return {"before": before, "parsed": plain(args_parser.parse_args())}


    ITEM = {"id": fields.Integer, "name": fields.String, "verbose": fields.Integer}


    class Item(AsyncResource):
        async def get(self, item_id):
            args = args_parser.parse_args()
            return marshal({"id": item_id, "name": args["name"],
                            "verbose": sum(args["n"] or ()), "secret": 1}, ITEM)


    api.add_resource(Args, "/args")
    api.add_resource(Default, "/default")
    api.add_resource(Values, "/values")
    api.add_resource(Required, "/required")
    api.add_resource(Bundle, "/bundle")
    api.add_resource(Strict, "/strict")
    api.add_resource(Readback, "/readback")
    api.add_resource(RequestFirst, "/request-first")
    api.add_resource(Item, "/items/<int:item_id>")
''')

TARGETS = [
    "/args", "/args?name=bob", "/args?name=b%C3%B6b", "/args?name=b\xf6b", "/args?name=a+b",
    "/args?name=one&name=two", "/args?n=1&n=2&n=3", "/args?n=x", "/args?n=", "/args?n",
    "/args?flag=true", "/args?flag=0", "/args?flag=maybe", "/args?color=RED",
    "/args?color=blue", "/args?trimmed=%20%20x%20", "/args?trimmed=+y+",
    "/args?price>=1.5&price<=9&price=3", "/args?price=abc", "/args?gone=here",
    "/args?q=%E2%82%AC&q=2", "/args?q=%zz", "/args?&&name=x&&", "/args?name==eq",
    "/args?name", "/args?unknown=1&name=z",
    "/default", "/default?q=1&n=2", "/default?n=notint", "/values?q=1&q=2", "/values",
    "/required", "/required?need=", "/required?need=yes", "/bundle", "/bundle?a=x&b=y",
    "/bundle?b=2", "/strict?known=1", "/strict?known=1&other=2", "/strict?other=%41",
    "/readback?name=x&n=1&n=2&extra=e", "/readback", "/readback?name=%C3%A9",
    "/request-first?name=x&n=5", "/items/7?name=it&n=3", "/items/7",
]


@pytest.fixture(scope="module")
def fast_app(tmp_path_factory):
    import importlib.util

    app_dir = tmp_path_factory.mktemp("fastpath_app")
    (app_dir / "fastpath_app.py").write_text(APP_SOURCE)
    spec = importlib.util.spec_from_file_location("fastpath_app_inproc",
                                                  app_dir / "fastpath_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.app_dir = app_dir
    return module


def _scope(method, target, headers=()):
    path, _, query = target.partition("?")
    raw = path.encode("utf-8")
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": raw,
            "query_string": query.encode("utf-8"), "root_path": "",
            "headers": [(b"host", b"127.0.0.1")] + [(k.encode(), v.encode())
                                                     for k, v in headers],
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}


def _call_native(asgi_app, method, target, headers=(), body=b""):
    """One request through the ASGI callable our server runs for the app."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(asgi_app(_scope(method, target, headers), receive, send))
    start = sent[0]
    return start["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _call_flask(app, method, target, headers=(), body=b""):
    path, _, query = target.partition("?")
    environ_query = query.encode("utf-8").decode("latin-1")
    resp = app.test_client().open(path, method=method, headers=list(headers), data=body,
                                  environ_overrides={"QUERY_STRING": environ_query})
    return resp.status_code, resp.data


@pytest.mark.parametrize("target", TARGETS)
def test_native_parse_answers_like_flask(fast_app, target):
    native = asgi(fast_app.app)
    assert _call_native(native, "GET", target) == _call_flask(fast_app.app, "GET", target)


@pytest.mark.parametrize("target,headers,body", [
    ("/default?q=fromquery", [("content-type", "application/json")], b'{"q": "fromjson"}'),
    ("/default", [("content-type", "application/json")], b'{"n": 4}'),
    ("/default", [("content-type", "application/json")], b""),
    ("/default", [("content-type", "application/json")], b"{bad"),
    ("/default?q=1", [("content-type", "text/plain")], b"hello"),
    ("/values?q=1", [("content-type", "application/x-www-form-urlencoded")], b"q=2&q=3"),
    ("/values?q=1", [], b""),
    ("/default?q=1", [], b"no content type"),
    ("/default?q=1", [], b""),
])
def test_native_parse_with_bodies_answers_like_flask(fast_app, target, headers, body):
    native = asgi(fast_app.app)
    assert (_call_native(native, "POST", target, headers, body)
            == _call_flask(fast_app.app, "POST", target, headers, body))


@pytest.mark.parametrize("headers,body", [
    ([("content-type", "application/json")], b""),
    ([("content-type", "application/json")], b'{"q": "fromjson"}'),
    ([("Content-Type", "application/json")], b'{"q": "mixedcase"}'),
    ([("content-type", "application/x-www-form-urlencoded")], b""),
    ([("content-type", "application/x-www-form-urlencoded")], b"q=form&n=5"),
    ([], b"q=nocontenttype"),
])
def test_get_with_a_content_type_or_body_reads_like_flask(fast_app, headers, body):
    native = asgi(fast_app.app)
    for target in ("/default?q=1&n=2", "/values?q=1", "/args?q=2"):
        assert (_call_native(native, "GET", target, headers, body)
                == _call_flask(fast_app.app, "GET", target, headers, body)), target


def test_readback_sees_parsed_args_and_unparsed_arguments(fast_app):
    native = asgi(fast_app.app)
    status, body = _call_native(native, "GET", "/readback?name=x&n=1&n=2&extra=e")
    assert status == 200
    answer = json.loads(body)
    assert answer["args"] == {"name": ["x"], "n": ["1", "2"], "extra": ["e"]}
    assert answer["args_type"] == "ImmutableMultiDict"
    assert answer["unparsed"] == {}
    assert answer["parsed"]["n"] == [1, 2]


def test_light_request_hands_over_to_the_real_request(fast_app):
    """What the light view made becomes the real request's own (no second parse)."""
    app = fast_app.app
    native = asgi(app)
    route = native._router.lookup("GET", "/args")
    scope = _scope("GET", "/args?name=x&n=1")
    ctx = LazyRequestContext(app, route, "GET", b"", scope=scope)
    ctx.push()
    try:
        light = ctx.light_request()
        assert isinstance(light, LightRequest)
        assert "request" not in ctx.__dict__  # nothing made the werkzeug Request yet
        args = light.args
        light.unparsed_arguments = {"left": 1}
        assert light.is_json is False
        assert list(light.values.items(multi=True)) == [("name", "x"), ("n", "1")]
        real = ctx.request
        assert real.args is args
        assert real.unparsed_arguments == {"left": 1}
        assert light.headers is real.headers  # anything else: the real request's
        assert ctx.light_request() is real
    finally:
        ctx.pop(None)


def test_custom_request_class_keeps_the_real_request(fast_app, tmp_path):
    """An app whose request class reads args its own way is never given the light view."""
    from flask_restful_async import Api, AsyncResource, reqparse

    class UpperArgs(Request):
        @property
        def args(self):
            from werkzeug.datastructures import ImmutableMultiDict
            return ImmutableMultiDict([(k, v.upper()) for k, v in
                                       super().args.items(multi=True)])

    app = Flask("custom_request")
    app.request_class = UpperArgs
    api = Api(app)
    parser = reqparse.RequestParser()
    parser.add_argument("name", location="args")

    class R(AsyncResource):
        async def get(self):
            return parser.parse_args()

    api.add_resource(R, "/r")
    native = asgi(app)
    assert _call_native(native, "GET", "/r?name=abc") == (200, b'{"name": "ABC"}\n')
    assert _call_flask(app, "GET", "/r?name=abc") == (200, b'{"name": "ABC"}\n')


def test_over_sockets_like_flask(fast_app, loop_name):
    with serve("fastpath_app:app", "--app-dir", str(fast_app.app_dir),
               "--loop", loop_name) as srv:
        for target in ("/items/3?name=x&n=2", "/args?name=b%C3%B6b&n=1&n=x",
                       "/args?q=%E2%82%AC&q=+plus+&color=Green", "/readback?a=1&a=2&name=",
                       "/strict?known=1&other=2", "/request-first?n=9"):
            r = h11_get(srv.port, target)
            assert (r.status, r.body) == _call_flask(fast_app.app, "GET", target), target


# --------------------------------------------------------------------------------------------
# marshal: field classes and field instances give the same output
# --------------------------------------------------------------------------------------------

class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


DATA = [
    {"a": 1, "b": "x", "c": 2.5, "d": True, "e": "3.14159", "f": None},
    {"a": "7", "b": 5, "c": "1e3", "d": [], "e": Decimal("2.5")},
    {},
    _Obj(a=1, b="y", c=0.0, d=0, e=1),
    [{"a": 1}, {"b": 2}],
    ({"a": 3, "b": "z"},),
]
CLASSES = {"a": fields.Integer, "b": fields.String, "c": fields.Float, "d": fields.Boolean,
           "e": fields.Fixed, "f": fields.Raw, "g": fields.Arbitrary,
           "nested": {"a": fields.Integer, "b": fields.Raw}}


def _instances(spec):
    return {k: (_instances(v) if isinstance(v, dict) else v()) for k, v in spec.items()}


@pytest.mark.parametrize("data", DATA)
def test_marshal_classes_and_instances_match(data):
    expected = marshal(data, _instances(CLASSES))
    for _ in range(3):  # the shared instances must not carry anything between calls
        got = marshal(data, CLASSES)
        assert got == expected
        assert type(got) is type(expected)
        assert json.dumps(got) == json.dumps(expected)
    assert marshal(data, CLASSES, envelope="env") == marshal(data, _instances(CLASSES),
                                                              envelope="env")


def test_marshal_field_class_errors_match():
    for spec in ({"x": fields.Integer}, {"x": fields.Float}):
        errors = []
        for field_spec in (spec, _instances(spec)):
            with pytest.raises(Exception) as info:
                marshal({"x": "not a number"}, field_spec)
            errors.append((type(info.value), str(info.value)))
        assert errors[0] == errors[1]


def test_marshal_field_class_with_its_own_constructor_is_made_each_time():
    made = []

    class Counting(fields.Raw):
        def __init__(self):
            super().__init__()
            made.append(self)

    for _ in range(3):
        assert marshal({"x": 1}, {"x": Counting}) == OrderedDict([("x", 1)])
    assert len(made) == 3 and len(set(map(id, made))) == 3


def test_marshal_subclass_without_constructor_formats_like_an_instance():
    class Upper(fields.String):
        def format(self, value):
            return str(value).upper()

    data = [{"x": "ab"}, {"x": None}, {"y": 1}]
    assert marshal(data, {"x": Upper}) == marshal(data, {"x": Upper()})


def test_get_value_fast_path_matches_dotted_and_attribute_lookups():
    data = {"items": 1, "a": {"b": 2}, "k": 0}
    # a dict's missing key falls back to its attribute, as the general lookup does
    assert fields.get_value("keys", data) == data.keys
    assert fields.get_value("missing", data) is None
    assert fields.get_value("missing", data, "d") == "d"
    assert fields.get_value("a.b", data) == 2
    assert fields.get_value("k", data) == 0
    assert fields.get_value("b", _Obj(b=4)) == 4
    assert fields.get_value(0, ["first"]) == "first"


# --------------------------------------------------------------------------------------------
# The direct path's JSON encoder
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    {}, [], {"a": 1, "b": [1, 2.5, None, True, False], "c": {"d": "é€\u2028\x00"}},
    OrderedDict([("z", 1), ("a", 2)]), {1: "int key", 2.5: "float", None: "n", True: "t"},
    [float("inf"), float("-inf"), 1e300, -0.0, 10 ** 30], "just a string", 3, None,
    ({"tuple": (1, 2)},), {"big": "x" * 10000},
])
def test_json_dumps_default_matches_json_dumps(value):
    assert json_dumps_default(value) == json.dumps(value)


def test_json_dumps_default_nan_and_errors_match_json_dumps():
    assert json_dumps_default([math.nan]) == json.dumps([math.nan])
    for bad in ({"x": object()}, {(1, 2): 1}, {"d": Decimal("1.5")}):
        with pytest.raises(TypeError) as expected:
            json.dumps(bad)
        with pytest.raises(TypeError) as got:
            json_dumps_default(bad)
        assert str(got.value) == str(expected.value)
    circular = {}
    circular["self"] = circular
    with pytest.raises(ValueError, match="Circular reference detected"):
        json_dumps_default(circular)


def test_query_arguments_alone_make_no_werkzeug_request(fast_app, monkeypatch):
    """parse_args on query arguments (and marshal) never build the environ/Request; reading
    `request` itself does, once."""
    from flask_restful_async import lazy_context

    built = []
    real_build = lazy_context.environ_from_scope

    def counting(scope, body):
        built.append(scope["path"])
        return real_build(scope, body)

    monkeypatch.setattr(lazy_context, "environ_from_scope", counting)
    native = asgi(fast_app.app)
    assert _call_native(native, "GET", "/items/7?name=it&n=3")[0] == 200
    assert _call_native(native, "GET", "/args?name=x&price>=2&flag=true&color=red")[0] == 200
    assert _call_native(native, "GET", "/default?q=1&n=2")[0] == 200
    assert built == []
    assert _call_native(native, "GET", "/readback?name=x")[0] == 200
    assert built == ["/readback"]

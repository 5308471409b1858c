"""Error routing on Flask 3: which handler answers, and PROPAGATE_EXCEPTIONS.

Each case runs with a sync Resource and with an AsyncResource (through the WSGI test
client and through the ASGI adapter): exceptions from async code must take the same path.
"""
import asyncio

import pytest
from flask import Blueprint, Flask
from flask.signals import got_request_exception
from werkzeug.exceptions import BadRequest

from flask_restful_async import Api, AsyncResource, Resource, abort
from flask_restful_async.testing import asgi_test_client


class Boom(Exception):
    pass


class Teapot(Exception):
    pass


def _resource(kind: str, exc_factory):
    if kind == "sync":
        class Failing(Resource):
            def get(self):
                raise exc_factory()
    else:
        class Failing(AsyncResource):
            async def get(self):
                await asyncio.sleep(0)
                raise exc_factory()
    return Failing


@pytest.fixture(params=["sync", "async-wsgi", "async-asgi"])
def setup(request):
    """(kind, make_client): build the app, then a client for this variant."""
    clients = []

    def make_client(app):
        if request.param == "async-asgi":
            client = asgi_test_client(app)
            clients.append(client)
            return client
        return app.test_client()

    yield ("sync" if request.param == "sync" else "async"), make_client
    for client in clients:
        client.bridge.close()


def _app(kind, exc_factory, **api_kwargs):
    app = Flask(__name__)
    api = Api(app, **api_kwargs)
    api.add_resource(_resource(kind, exc_factory), "/fail")
    return app, api


def test_unhandled_exception_is_a_json_500(setup):
    kind, make_client = setup
    app, _ = _app(kind, Boom)
    resp = make_client(app).get("/fail")
    assert resp.status_code == 500
    assert resp.json == {"message": "Internal Server Error"}


@pytest.mark.parametrize("propagate,testing", [(True, False), (None, True)])
def test_propagate_exceptions_reraises_to_the_caller(setup, propagate, testing):
    kind, make_client = setup
    app, _ = _app(kind, Boom)
    app.config["PROPAGATE_EXCEPTIONS"] = propagate
    app.testing = testing
    with pytest.raises(Boom):
        make_client(app).get("/fail")


def test_propagate_false_wins_over_testing(setup):
    kind, make_client = setup
    app, _ = _app(kind, Boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.testing = True
    assert make_client(app).get("/fail").status_code == 500


def test_propagating_api_error_reaches_the_apps_own_errorhandler(setup):
    # the documented way to let Flask error handlers see errors of Api endpoints
    kind, make_client = setup
    app, _ = _app(kind, Teapot)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    app.register_error_handler(Teapot, lambda e: ({"handled": "by flask"}, 418))
    resp = make_client(app).get("/fail")
    assert resp.status_code == 418
    assert resp.json == {"handled": "by flask"}


def test_http_errors_never_propagate(setup):
    kind, make_client = setup
    app, _ = _app(kind, lambda: BadRequest("bad input"))
    app.config["PROPAGATE_EXCEPTIONS"] = True
    resp = make_client(app).get("/fail")
    assert resp.status_code == 400
    assert resp.json == {"message": "bad input"}


def test_abort_data_is_the_body(setup):
    kind, make_client = setup

    def raise_abort():
        try:
            abort(409, message="taken", field="name")
        except Exception as e:
            return e
    app, _ = _app(kind, raise_abort)
    resp = make_client(app).get("/fail")
    assert resp.status_code == 409
    assert resp.json == {"message": "taken", "field": "name"}


def test_errors_dict_sets_status_and_body(setup):
    kind, make_client = setup
    app, _ = _app(kind, Teapot, errors={"Teapot": {"status": 418, "message": "short and stout"}})
    resp = make_client(app).get("/fail")
    assert resp.status_code == 418
    assert resp.json == {"message": "short and stout", "status": 418}


def test_handle_error_override_is_used(setup):
    kind, make_client = setup

    class MyApi(Api):
        def handle_error(self, e):
            return self.make_response({"mine": type(e).__name__}, 599)

    app = Flask(__name__)
    MyApi(app).add_resource(_resource(kind, Boom), "/fail")
    resp = make_client(app).get("/fail")
    assert resp.status_code == 599
    assert resp.json == {"mine": "Boom"}


def test_got_request_exception_is_sent_once_per_error(setup):
    kind, make_client = setup
    app, _ = _app(kind, Boom)
    seen = []

    def record(sender, exception, **extra):
        seen.append(type(exception))

    got_request_exception.connect(record, app)
    try:
        make_client(app).get("/fail")
    finally:
        got_request_exception.disconnect(record, app)
    assert seen == [Boom]


def test_non_api_routes_keep_flask_error_handling(setup):
    kind, make_client = setup
    app, _ = _app(kind, Boom)

    @app.route("/plain")
    def plain():
        raise Teapot()

    app.register_error_handler(Teapot, lambda e: ("flask handled it", 418))
    client = make_client(app)
    resp = client.get("/plain")
    assert (resp.status_code, resp.data) == (418, b"flask handled it")
    resp = client.get("/missing")
    assert resp.status_code == 404
    assert resp.content_type.startswith("text/html")


def test_catch_all_404s_and_405s_are_json(setup):
    kind, make_client = setup
    app, _ = _app(kind, Boom, catch_all_404s=True)
    client = make_client(app)
    resp = client.get("/missing")
    assert resp.status_code == 404 and resp.content_type == "application/json"
    resp = client.post("/fail")
    assert resp.status_code == 405 and resp.content_type == "application/json"
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_blueprint_api_routes_only_its_own_errors(setup):
    kind, make_client = setup
    bp = Blueprint("v1", __name__, url_prefix="/v1")
    Api(bp, prefix="/api").add_resource(_resource(kind, Boom), "/fail")
    app = Flask(__name__)
    app.register_blueprint(bp)

    @app.route("/other")
    def other():
        raise Boom()

    client = make_client(app)
    resp = client.get("/v1/api/fail")
    assert resp.status_code == 500 and resp.json == {"message": "Internal Server Error"}
    resp = client.get("/other")
    assert resp.status_code == 500 and resp.content_type.startswith("text/html")

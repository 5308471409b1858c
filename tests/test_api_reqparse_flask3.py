"""reqparse on Werkzeug 3: the default locations must not turn non-JSON bodies into 415s.

flask-restful 0.3.10 reads `request.json`, which Werkzeug >= 2.1 answers with 415 when the
body is not JSON; each case below checks stock's failure too, so the test shows the fix.
"""
import flask_restful as upstream
import pytest
from flask import Flask

import flask_restful_async as ours


def _app(lib, **argument):
    app = Flask("reqparse-%s" % lib.__name__)
    api = lib.Api(app)
    parser = lib.reqparse.RequestParser()
    parser.add_argument("name", **argument)
    parser.add_argument("n", type=int)

    class Echo(lib.Resource):
        def post(self):
            return dict(parser.parse_args())

        def get(self):
            return dict(parser.parse_args())

    api.add_resource(Echo, "/echo")
    return app.test_client()


CASES = [
    # (request kwargs, expected arguments)
    ({"data": {"name": "form", "n": "2"}}, {"name": "form", "n": 2}),            # form body
    ({"query_string": {"name": "q", "n": "3"}}, {"name": "q", "n": 3}),         # no body
    ({"data": "name=raw", "content_type": "text/plain",
      "query_string": {"n": "4"}}, {"name": None, "n": 4}),                   # non-JSON body
]


@pytest.mark.parametrize("kwargs,expected", CASES)
def test_default_location_reads_args_and_form_without_415(kwargs, expected):
    assert _app(upstream).post("/echo", **kwargs).status_code == 415  # the Werkzeug 3 breakage
    resp = _app(ours).post("/echo", **kwargs)
    assert resp.status_code == 200, resp.data
    assert resp.json == expected


def test_get_without_body_parses_query_string():
    assert _app(upstream).get("/echo?name=a").status_code == 415
    assert _app(ours).get("/echo?name=a").json == {"name": "a", "n": None}


def test_json_body_still_read_and_merged_with_query_string():
    resp = _app(ours).post("/echo?n=5", json={"name": "j"})
    assert resp.status_code == 200
    assert resp.json == {"name": "j", "n": 5}


def test_malformed_json_is_still_a_400():
    resp = _app(ours).post("/echo", data="{not json", content_type="application/json")
    assert resp.status_code == 400


def test_empty_body_declared_json_has_no_arguments():
    resp = _app(ours).post("/echo?n=1", data=b"", content_type="application/json")
    assert resp.status_code == 200
    assert resp.json == {"name": None, "n": 1}


def test_json_array_body_has_no_named_arguments():
    resp = _app(ours).post("/echo?n=1", json=["a", "b"])
    assert resp.status_code == 200
    assert resp.json == {"name": None, "n": 1}


def test_explicit_json_location_without_json_body_is_missing_not_415():
    client = _app(ours, location="json", required=True)
    resp = client.post("/echo", data={"name": "form"})
    assert resp.status_code == 400
    assert resp.json == {"message": {"name": "Missing required parameter in the JSON body"}}
    assert client.post("/echo", json={"name": "x"}).json["name"] == "x"


def test_bundled_errors_with_http_error_code():
    app = Flask(__name__)
    with app.test_request_context("/?a=x&b=y"):
        parser = ours.reqparse.RequestParser(bundle_errors=True)
        parser.add_argument("a", type=int)
        parser.add_argument("b", type=int)
        with pytest.raises(Exception) as info:
            parser.parse_args(http_error_code=422)
    assert info.value.code == 422
    assert set(info.value.data["message"]) == {"a", "b"}

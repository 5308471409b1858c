"""The example `make run` serves (examples/app.py) works as its docstring says."""
from pathlib import Path

from conftest import h11_get, serve

ROOT = Path(__file__).resolve().parents[1]


def test_example_app_resources():
    with serve("examples.app:app", "--app-dir", str(ROOT)) as srv:
        r = h11_get(srv.port, "/")
        assert r.status == 200 and r.json() == {"hello": "world"}
        r = h11_get(srv.port, "/items/1")
        assert r.status == 200 and r.json() == {"id": 1, "name": "apple", "uri": "/items/1"}
        r = h11_get(srv.port, "/items/9")
        assert r.status == 404 and "does not exist" in r.json()["message"]
        r = h11_get(srv.port, "/items", method="POST", body=b"name=plum",
                    headers=[("content-type", "application/x-www-form-urlencoded")])
        assert r.status == 201 and r.json()["name"] == "plum"
        r = h11_get(srv.port, "/items", method="POST")
        assert r.status == 400 and "name" in r.json()["message"]

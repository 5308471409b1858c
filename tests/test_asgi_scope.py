"""The ASGI 3 `http` connection scope, key by key (ASGI HTTP spec, "HTTP connection scope")."""
import pytest

from conftest import H11Client, HOST, RawConn, request_bytes


def unwrap(v):
    """Undo asgi_app.jsonable: ({"bytes": s} -> bytes, {"list"/"tuple": [...]} -> list)."""
    if isinstance(v, dict):
        if "bytes" in v:
            return v["bytes"].encode("latin-1")
        if "list" in v:
            return [unwrap(x) for x in v["list"]]
        if "tuple" in v:
            return [unwrap(x) for x in v["tuple"]]
        if "dict" in v:
            return {k: unwrap(x) for k, x in v["dict"].items()}
    return v


def kind(v):
    """The Python type name asgi_app.jsonable recorded for a scope value."""
    if isinstance(v, dict):
        for k in ("bytes", "list", "tuple", "dict"):
            if k in v:
                return k
        return v.get("type")
    return type(v).__name__


def get_scope(port, target="/t/scope", headers=(), raw=None):
    if raw is None:
        with H11Client(port) as c:
            r = c.request("GET", target, headers=list(headers))
            local = c.local_port
    else:
        with RawConn(port) as c:
            c.send(raw)
            r = c.read_response()
            local = c.local_port
    assert r.status == 200, r.body[:300]
    return r.json(), local


def test_required_keys_and_types(port):
    info, _ = get_scope(port, "/t/scope?a=1")
    s = info["scope"]
    for key in ("type", "asgi", "http_version", "method", "scheme", "path", "raw_path",
                "query_string", "root_path", "headers", "client", "server"):
        assert key in info["keys"], key
    assert s["type"] == "http"
    asgi = unwrap(s["asgi"])
    assert asgi["version"] == "3.0"
    assert isinstance(asgi.get("spec_version", "2.0"), str)
    assert kind(s["http_version"]) == "str" and s["http_version"] == "1.1"
    assert kind(s["method"]) == "str" and s["method"] == "GET"
    assert s["scheme"] == "http"
    assert kind(s["path"]) == "str"
    assert kind(s["raw_path"]) == "bytes"
    assert kind(s["query_string"]) == "bytes"
    assert kind(s["root_path"]) == "str" and s["root_path"] == ""
    assert kind(s["headers"]) in ("list", "tuple")


def test_http_version_10(port):
    info, _ = get_scope(port, raw=b"GET /t/scope HTTP/1.0\r\n\r\n")
    assert info["scope"]["http_version"] == "1.0"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PATCH"])
def test_method_is_uppercase_str(port, method):
    info, _ = get_scope(port, raw=request_bytes(method, "/t/scope", body=b"x" if method == "POST" else b""))
    assert info["scope"]["method"] == method


def test_path_decoding_exact(port):
    # The echo handler (unknown path) returns scope["path"] and scope["raw_path"].
    with H11Client(port) as c:
        r = c.request("GET", "/d%20ir/%C3%A9t%C3%A9/x%2By%2Fz?k=%C3%A9")
    info = r.json()
    assert info["path"] == "/d ir/\u00e9t\u00e9/x+y/z"
    assert info["raw_path"] == "/d%20ir/%C3%A9t%C3%A9/x%2By%2Fz"
    assert info["query_string"] == "k=%C3%A9"


def test_empty_query_string(port):
    info, _ = get_scope(port, "/t/scope")
    assert unwrap(info["scope"]["query_string"]) == b""


def test_absolute_form_target(port):
    # RFC 9112 section 3.2.2: a server MUST accept the absolute-form; the app sees the path.
    with RawConn(port) as c:
        c.send(b"GET http://example.com/abs/path?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        r = c.read_response()
    info = r.json()
    assert info["path"] == "/abs/path"
    assert info["query_string"] == "q=1"


def test_headers_lowercased_bytes_in_order(port):
    hdrs = [("X-First", "1"), ("X-Repeat", "a"), ("Content-Type", "text/Plain"), ("x-repeat", "b")]
    info, _ = get_scope(port, "/t/scope", headers=hdrs)
    raw = info["scope"]["headers"]
    pairs = unwrap(raw)
    inner = raw.get("list") or raw.get("tuple")
    for item in inner:
        assert kind(item) in ("list", "tuple")
        vals = item.get("list") or item.get("tuple")
        assert len(vals) == 2
        assert all(kind(x) == "bytes" for x in vals)
    names = [k for k, _ in pairs]
    assert all(n == n.lower() for n in names)
    sent = [p for p in pairs if p[0] in (b"x-first", b"x-repeat", b"content-type")]
    assert sent == [[b"x-first", b"1"], [b"x-repeat", b"a"], [b"content-type", b"text/Plain"],
                    [b"x-repeat", b"b"]]
    assert [b"host", b"test"] in pairs


def test_client_and_server(port):
    info, local = get_scope(port, "/t/scope")
    client = unwrap(info["scope"]["client"])
    server = unwrap(info["scope"]["server"])
    assert client == [HOST, local]
    assert server == [HOST, port]
    assert kind(info["scope"]["client"]) in ("list", "tuple")


def test_state_from_lifespan(port):
    info, _ = get_scope(port, "/t/scope")
    assert info["state_type"] == "dict"
    assert info["greeting"] == "hello from lifespan"


def test_state_is_copied_per_request(port):
    """A request that writes into scope["state"] does not change what the next one sees."""
    info, _ = get_scope(port, "/t/scope?leak=one")
    assert info["greeting"] == "hello from lifespan"
    info2, _ = get_scope(port, "/t/scope")
    assert "leaked_one" not in info2["state_before"]
    assert info2["greeting"] == "hello from lifespan"


def test_scope_values_per_request_on_one_connection(port):
    with H11Client(port) as c:
        a = c.request("GET", "/first/path?x=1").json()
        b = c.request("POST", "/second", body=b"zz").json()
    assert (a["method"], a["path"], a["query_string"]) == ("GET", "/first/path", "x=1")
    assert (b["method"], b["path"], b["query_string"]) == ("POST", "/second", "")
    assert a["client"] == b["client"]

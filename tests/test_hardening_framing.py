"""Hardening: request smuggling and framing cases beyond the shared corpus, and the response
side (header injection from the app, a body that disagrees with the app's Content-Length).

Every bad request must get one error response (400, or 501/505 where the RFC names them) and a
closed connection, and the app must never be called for it (RFC 9112 section 11.2: a server
that guesses at framing is how smuggling starts)."""
from __future__ import annotations


import pytest

from conftest import (ANY_2XX_RE, wait_for, H11Client, Malformed, RawConn, h11_get,
                      parse_response, request_bytes, serve, status_lines)

REJECT = {400, 501, 505}
HEAD_TE = b"POST /framing HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


def calls(port: int) -> int:
    return h11_get(port, "/__calls__").json()["count"]


@pytest.fixture(scope="module", params=["asgi", "wsgi"])
def server(request):
    with serve(f"hardening_app:{request.param}", "--interface", request.param) as srv:
        yield srv


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    """An ASGI server whose /gated handler waits for the file <dir>/release."""
    d = tmp_path_factory.mktemp("harden")
    with serve("hardening_app:asgi", "--interface", "asgi", env={"HARDEN_DIR": str(d)}) as srv:
        yield srv.port, d


def state(port: int, key: str):
    return h11_get(port, "/__state__?key=" + key).json()["value"]




def post(*headers: bytes, body: bytes = b"") -> bytes:
    return b"POST /framing HTTP/1.1\r\nHost: t\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


# name -> bytes on the wire.  Each names the rule it breaks.
BAD = {
    # RFC 9112 6.1 / 6.3: both framing fields, in either order
    "cl_then_te": post(b"Content-Length: 5", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    "te_then_cl": post(b"Transfer-Encoding: chunked", b"Content-Length: 5", body=b"0\r\n\r\n"),
    "te_chunked_cl_zero": post(b"Transfer-Encoding: chunked", b"Content-Length: 0", body=b"0\r\n\r\n"),
    # RFC 9110 8.6 / RFC 9112 6.3: duplicate or list-form Content-Length
    "cl_duplicate_same": post(b"Content-Length: 3", b"Content-Length: 3", body=b"abc"),
    "cl_duplicate_differ": post(b"Content-Length: 3", b"Content-Length: 4", body=b"abcd"),
    "cl_list_same": post(b"Content-Length: 3, 3", body=b"abc"),
    "cl_list_differ": post(b"Content-Length: 3,4", body=b"abcd"),
    "cl_plus_sign": post(b"Content-Length: +3", body=b"abc"),
    "cl_minus": post(b"Content-Length: -1", body=b"abc"),
    "cl_hex": post(b"Content-Length: 0x3", body=b"abc"),
    "cl_inner_space": post(b"Content-Length: 1 2", body=b"a" * 12),
    "cl_overflow": post(b"Content-Length: 99999999999999999999999", body=b"abc"),
    "cl_empty": post(b"Content-Length: ", body=b"abc"),
    # RFC 9112 6.3: chunked must be the final coding of a request
    "te_chunked_not_last": post(b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"),
    "te_identity": post(b"Transfer-Encoding: identity", body=b"0\r\n\r\n"),
    "te_unknown": post(b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"),
    "te_chunked_twice_lines": post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip",
                                   body=b"0\r\n\r\n"),
    "te_empty": post(b"Transfer-Encoding: ", body=b"0\r\n\r\n"),
    "te_empty_with_cl": post(b"Transfer-Encoding: ", b"Content-Length: 5", body=b"hello"),
    "te_empty_in_http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: \r\nContent-Length: 2\r\n\r\nhi",
    "te_in_http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # RFC 9112 7.1: chunk-size = 1*HEXDIG, then [chunk-ext] CRLF
    "chunk_size_not_hex": HEAD_TE + b"g\r\nxxxxxxxxxxxxxxxx\r\n0\r\n\r\n",
    "chunk_size_0x": HEAD_TE + b"0x5\r\nhello\r\n0\r\n\r\n",
    "chunk_size_negative": HEAD_TE + b"-5\r\nhello\r\n0\r\n\r\n",
    "chunk_size_empty": HEAD_TE + b"\r\nhello\r\n0\r\n\r\n",
    "chunk_size_overflow": HEAD_TE + b"10000000000000000\r\nhello\r\n0\r\n\r\n",
    "chunk_size_space_no_ext": HEAD_TE + b"5 \r\nhello\r\n0\r\n\r\n",
    "chunk_data_longer": HEAD_TE + b"3\r\nhello\r\n0\r\n\r\n",
    "chunk_data_no_crlf": HEAD_TE + b"5\r\nhelloX0\r\n\r\n",
    "chunk_size_bare_lf": HEAD_TE + b"5\nhello\r\n0\r\n\r\n",
    "chunk_ext_no_name": HEAD_TE + b"5;\r\nhello\r\n0\r\n\r\n",
    "chunk_ext_ctl": HEAD_TE + b"5;a=\x01\r\nhello\r\n0\r\n\r\n",
    "chunk_ext_bare_cr": HEAD_TE + b"5;a\rb\r\nhello\r\n0\r\n\r\n",
    # the last chunk and the end of the trailer section must be exact CRLFs too
    "last_chunk_cr_then_other_byte": HEAD_TE + b"5\r\nhello\r\n0\r\xc3\n\r\n",
    "final_crlf_cr_then_other_byte": HEAD_TE + b"5\r\nhello\r\n0\r\n\rX",
    "trailer_name_with_space": HEAD_TE + b"5\r\nhello\r\n0\r\nX Y: 1\r\n\r\n",
    "trailer_bare_lf": HEAD_TE + b"5\r\nhello\r\n0\r\nX-Y: 1\n\r\n",
    # RFC 9112 5.2: obs-fold is refused (400) by a server that does not unfold
    "obs_fold_space": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
    "obs_fold_tab": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n\tb\r\n\r\n",
    "whitespace_before_first_field": b"GET / HTTP/1.1\r\n Host: t\r\n\r\n",
    # RFC 9112 2.2: a bare CR is invalid anywhere; bare LF line ends are not accepted here
    "bare_lf_request_line": b"GET / HTTP/1.1\nHost: t\r\n\r\n",
    "bare_lf_header_line": b"GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n",
    "bare_lf_end_of_head": b"GET / HTTP/1.1\r\nHost: t\r\n\n",
    "bare_cr_in_value": b"GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n",
    "bare_cr_line_end": b"GET / HTTP/1.1\r\nHost: t\r\r\n\r\n",
    "bare_cr_request_line": b"GET /\r HTTP/1.1\r\nHost: t\r\n\r\n",
    # RFC 9110 5.5: no NUL or other CTL in field values; names are tokens (5.1)
    "nul_in_value": b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n",
    "nul_in_name": b"GET / HTTP/1.1\r\nHost: t\r\nX\x00Y: a\r\n\r\n",
    "nul_in_target": b"GET /a\x00b HTTP/1.1\r\nHost: t\r\n\r\n",
    "vt_in_value": b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x0bb\r\n\r\n",
    "esc_in_value": b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x1bb\r\n\r\n",
    "ctl_in_name": b"GET / HTTP/1.1\r\nHost: t\r\nX\x01: a\r\n\r\n",
    "tab_in_target": b"GET /a\tb HTTP/1.1\r\nHost: t\r\n\r\n",
    "ff_in_target": b"GET /a\x0cb HTTP/1.1\r\nHost: t\r\n\r\n",
    "del_in_target": b"GET /a\x7f HTTP/1.1\r\nHost: t\r\n\r\n",
    # RFC 9112 5.1: no whitespace between the field name and the colon
    "space_before_colon": b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
    "tab_before_colon": b"GET / HTTP/1.1\r\nHost\t: t\r\n\r\n",
    "space_before_colon_cl": post(b"Content-Length : 5", body=b"hello"),
    "space_inside_name": b"GET / HTTP/1.1\r\nHost: t\r\nX H: y\r\n\r\n",
    "empty_name": b"GET / HTTP/1.1\r\nHost: t\r\n: y\r\n\r\n",
    "no_colon": b"GET / HTTP/1.1\r\nHost: t\r\nJustAName\r\n\r\n",
    # RFC 9112 3 / 3.2: request-line shape and request-target forms
    "two_spaces_after_method": b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n",
    "space_in_target": b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n",
    "empty_target": b"GET  HTTP/1.1\r\nHost: t\r\n\r\n",
    "tab_separator": b"GET\t/ HTTP/1.1\r\nHost: t\r\n\r\n",
    "trailing_space_after_version": b"GET / HTTP/1.1 \r\nHost: t\r\n\r\n",
    "lowercase_version": b"GET / http/1.1\r\nHost: t\r\n\r\n",
    "version_leading_zero": b"GET / HTTP/01.1\r\nHost: t\r\n\r\n",
    "no_version": b"GET /\r\nHost: t\r\n\r\n",
    "asterisk_for_get": b"GET * HTTP/1.1\r\nHost: t\r\n\r\n",
    "authority_form_for_get": b"GET t:80 HTTP/1.1\r\nHost: t\r\n\r\n",
    "method_with_slash": b"GE/T / HTTP/1.1\r\nHost: t\r\n\r\n",
    # RFC 9112 3.2: exactly one Host in HTTP/1.1
    "two_hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no_host": b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_framing_rejected_and_app_not_called(server, name):
    port = server.port
    before = calls(port)
    with RawConn(port, timeout=5) as c:
        c.send(BAD[name])
        head = c.read_until(lambda b: b"\r\n\r\n" in b)
        # fail at once on a success instead of waiting for a close that will not come
        assert not ANY_2XX_RE.match(head), (name, head[:300])
        data, closed = c.read_until_close()
    statuses = status_lines(data)
    assert statuses and statuses[0] in REJECT, (name, data[:300])
    assert len(statuses) == 1, (name, data[:600])
    assert not ANY_2XX_RE.search(data), (name, data[:300])
    assert closed, name
    assert calls(port) == before, f"{name}: the app was called"


# A second, bad request behind a good one on the same connection.
BEHIND = {
    "cl_te": BAD["cl_then_te"],
    "duplicate_cl": BAD["cl_duplicate_differ"],
    "bad_chunk_size": BAD["chunk_size_not_hex"],
    "obs_fold": BAD["obs_fold_space"],
    "nul_in_value": BAD["nul_in_value"],
    "invalid_target": BAD["space_in_target"],
    "space_inside_name": BAD["space_inside_name"],
    "final_crlf_cr_then_other_byte": BAD["final_crlf_cr_then_other_byte"],
}


@pytest.mark.parametrize("name", sorted(BEHIND))
@pytest.mark.parametrize("first", ["get", "post_chunked"])
def test_invalid_request_pipelined_behind_valid_one(server, name, first):
    port = server.port
    valid = {"get": request_bytes("GET", "/first"),
             "post_cl": request_bytes("POST", "/upload", body=b"x" * 300),
             "post_chunked": request_bytes("POST", "/upload", [("Transfer-Encoding", "chunked")],
                                           body=b"5\r\nhello\r\n0\r\n\r\n")}[first]
    before = calls(port)
    with RawConn(port) as c:
        c.send(valid + BEHIND[name])
        r = c.read_response()
        assert r.status == 200, r
        head = c.read_until(lambda b: b"\r\n\r\n" in b, timeout=5)
        assert not ANY_2XX_RE.match(head), (name, head[:300])
        rest, closed = c.read_until_close(timeout=5)
    assert closed
    assert status_lines(rest)[:1] and status_lines(rest)[0] in REJECT, (name, rest[:300])
    assert len(status_lines(rest)) == 1 and not ANY_2XX_RE.search(rest), rest[:300]
    assert calls(port) == before + 1, f"{name}: the app was called for the invalid request"


def test_pipelined_request_sent_while_the_first_is_in_flight(gated):
    """A keep-alive client may send its next request before the first is answered (RFC 9112
    9.3.2).  When the first request ended exactly at the end of a read, the second (sent once
    the app is already handling the first) must still be parsed from its first byte."""
    port, d = gated
    for extra in (0, 200):   # shorter and longer than the first request
        seen = state(port, "gated") or 0
        with RawConn(port) as c:
            c.send(request_bytes("GET", "/gated"))
            wait_for(lambda: (state(port, "gated") or 0) > seen, "the app to get /gated")
            c.send(request_bytes("GET", "/second/" + "a" * extra))
            (d / "release").write_text("")
            try:
                first = c.read_response()
                assert first.status == 200 and first.body == b"released"
                second = c.read_response(timeout=5)
            finally:
                (d / "release").unlink()
        assert second.status == 200, (extra, second)
        assert second.json()["path"] == "/second/" + "a" * extra


# ------------------------------------------------------------------------------ response side

INJECT = [
    ("value_crlf", b"x-ok", b"fine\r\nX-Injected: yes"),
    ("value_lf", b"x-ok", b"fine\nX-Injected: yes"),
    ("value_cr", b"x-ok", b"fine\rX-Injected: yes"),
    ("value_nul", b"x-ok", b"fine\x00X-Injected: yes"),
    ("name_crlf", b"x-bad\r\nX-Injected", b"yes"),
    ("name_colon", b"X-Injected: yes\r\nx-a", b"b"),
    ("name_space", b"x bad", b"X-Injected"),
    ("name_empty", b"", b"X-Injected"),
]


@pytest.mark.parametrize("case", INJECT, ids=[c[0] for c in INJECT])
def test_app_header_injection_never_reaches_the_wire(server, case):
    _, name, value = case
    port = server.port
    with RawConn(port) as c:
        c.send(request_bytes("GET", f"/bad-header?name={name.hex()}&value={value.hex()}",
                             [("Connection", "close")]))
        data, closed = c.read_until_close()
    assert closed
    assert b"X-Injected" not in data, data[:400]
    assert not ANY_2XX_RE.search(data), data[:400]
    if data:
        assert status_lines(data) == [500], data[:300]
        parse_response(data, eof=True)   # a well-formed 500
    with H11Client(port) as c:
        assert c.request("GET", "/after").status == 200


CL_MISMATCH = [
    ("short_one_part", "10", ["hello"]),
    ("short_many_parts", "100", ["aa", "bb", "cc"]),
    ("long_one_part", "3", ["helloworld"]),
    ("long_many_parts", "4", ["ab", "cd", "ef"]),
    ("zero_declared", "0", ["x"]),
]


@pytest.mark.parametrize("case", CL_MISMATCH, ids=[c[0] for c in CL_MISMATCH])
def test_body_disagreeing_with_app_content_length_closes(server, case):
    """The client must never read bytes beyond the declared length as the next response: the
    connection is closed, and what was sent is either a 500 or at most the declared bytes."""
    _, cl, parts = case
    port = server.port
    query = f"cl={cl}&parts=" + ",".join(p.encode().hex() for p in parts)
    with RawConn(port) as c:
        c.send(request_bytes("GET", "/cl-mismatch?" + query) + request_bytes("GET", "/next"))
        data, closed = c.read_until_close()
    assert closed, data[:300]
    assert data.count(b"HTTP/1.1 ") <= 1, data[:400]
    if data.startswith(b"HTTP/1.1 200"):
        try:
            r, rest = parse_response(data, eof=True)
        except Malformed:
            return   # cut short: the client can tell
        assert r.body == b"".join(p.encode() for p in parts)[:int(cl)]
        assert rest == b"", rest[:100]
    elif data:
        assert status_lines(data) == [500], data[:300]

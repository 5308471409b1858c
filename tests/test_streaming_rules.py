"""The rules behind the streaming responses, without a server: which bytes a Range asks for
(RFC 9110 14), when a conditional request gets 304, how an event is written on the wire, and
which resource methods read their body in chunks."""
import pytest

from flask_restful_async.streaming import Event, streams_body
from flask_restful_async.streaming.body import body_chunks, reads_body_in_chunks
from flask_restful_async.streaming.ranges import (MAX_RANGES, decide_ranges, etag_matches,
                                                  not_modified)
from flask_restful_async.streaming.sse import encode_event

SIZE = 1000
TAG = '"abc"'
MTIME = 1_700_000_000
DATE = "Tue, 14 Nov 2023 22:13:20 GMT"  # MTIME as an HTTP date


@pytest.mark.parametrize("header, status, ranges", [
    (None, 200, []),
    ("bytes=0-99", 206, [(0, 99)]),
    ("bytes=900-", 206, [(900, 999)]),
    ("bytes=-100", 206, [(900, 999)]),
    ("bytes=-5000", 206, [(0, 999)]),            # a suffix longer than the file: all of it
    ("bytes=990-2000", 206, [(990, 999)]),       # clipped to the end
    ("bytes=0-0,-1", 206, [(0, 0), (999, 999)]),
    ("bytes= 1-2 , 5-6", 206, [(1, 2), (5, 6)]),  # whitespace allowed
    ("bytes=1000-", 416, []),                    # starts after the end
    ("bytes=5-3", 416, []),                      # inverted
    ("bytes=0-1,5-3", 416, []),                  # one inverted range spoils the set
    ("bytes=-0", 416, []),
    ("items=0-5", 200, []),                      # another unit: ignored
    ("bytes=abc", 200, []),                      # malformed: ignored
    ("bytes=", 200, []),
    ("bytes=0-1," * MAX_RANGES + "0-1", 416, []),  # more than MAX_RANGES
])
def test_ranges(header, status, ranges):
    d = decide_ranges("GET", header, None, SIZE, TAG, MTIME)
    assert (d.status, d.ranges) == (status, ranges)


def test_range_only_for_get_and_head():
    assert decide_ranges("POST", "bytes=0-1", None, SIZE, TAG, MTIME).status == 200
    assert decide_ranges("HEAD", "bytes=0-1", None, SIZE, TAG, MTIME).status == 206


@pytest.mark.parametrize("if_range, honoured", [
    (TAG, True), ('"other"', False), ('W/"abc"', False),  # If-Range needs a strong match
    (DATE, True), ("Tue, 14 Nov 2023 22:13:21 GMT", False), ("garbage", False),
])
def test_if_range(if_range, honoured):
    d = decide_ranges("GET", "bytes=0-1", if_range, SIZE, TAG, MTIME)
    assert d.status == (206 if honoured else 200)


def test_conditional_get():
    assert not_modified("GET", TAG, None, TAG, MTIME)
    assert not_modified("GET", 'W/"abc"', None, TAG, MTIME)      # weak comparison
    assert not_modified("GET", '"x", "abc"', None, TAG, MTIME)
    assert not_modified("HEAD", "*", None, TAG, MTIME)
    assert not not_modified("GET", '"x"', DATE, TAG, MTIME)       # If-None-Match wins
    assert not_modified("GET", None, DATE, TAG, MTIME)
    assert not not_modified("GET", None, "Tue, 14 Nov 2023 22:13:19 GMT", TAG, MTIME)
    assert not not_modified("PUT", TAG, None, TAG, MTIME)
    assert etag_matches('W/"abc"', TAG, weak=True) and not etag_matches('W/"abc"', TAG, weak=False)


def test_event_wire_format():
    assert Event(data="hi").encode() == b"data: hi\n\n"
    assert Event(data="a\nb\r\nc\rd", id="7", event="tick", retry=500).encode() == (
        b"id: 7\nevent: tick\nretry: 500\ndata: a\ndata: b\ndata: c\ndata: d\n\n")
    assert Event(data={"n": 1}).encode() == b'data: {"n":1}\n\n'
    assert Event(comment="keep\nalive").encode() == b": keep\n: alive\n\n"
    assert encode_event([1, 2]) == b"data: [1,2]\n\n"
    assert encode_event("x") == b"data: x\n\n"
    assert encode_event(b"\xc3\xa9") == "data: é\n\n".encode()
    for bad in (dict(id="a\nb"), dict(id="a\0b"), dict(event="a\rb"), dict(retry=-1),
                dict(retry="5"), {}):
        with pytest.raises(ValueError):
            Event(**bad).encode() if bad else Event().encode()


def test_methods_that_read_their_body_in_chunks_are_found():
    async def direct(self):
        async for _ in body_chunks():
            pass

    async def nested(self):
        async def inner():
            return [c async for c in body_chunks()]
        return await inner()

    async def plain(self):
        return {"x": 1}

    async def helper(self):
        return await something_else()  # noqa: F821 - never called

    assert reads_body_in_chunks(direct) and reads_body_in_chunks(nested)
    assert not reads_body_in_chunks(plain) and not reads_body_in_chunks(helper)
    assert reads_body_in_chunks(streams_body(helper))


def test_a_body_chunks_imported_in_an_enclosing_function_is_found():
    # (an app made in a factory function imports it there: the method sees a closure variable)
    from flask_restful_async.streaming import body_chunks as imported

    def factory():
        body_chunks = imported

        async def put(self):
            async for _ in body_chunks():
                pass
        return put

    method = factory()
    assert "body_chunks" in method.__code__.co_freevars
    assert reads_body_in_chunks(method)

"""Streaming responses and request bodies, moved by the C server: Server-Sent Events, files
sent with sendfile(2) (Range, conditional requests), chunked bodies in and out, and lines
followed as a file grows.  See docs/streaming.md.

    from flask_restful_async.streaming import (EventStream, Event, send_file, follow,
                                               body_chunks)
"""
from flask_restful_async.streaming.body import body_chunks, streams_body
from flask_restful_async.streaming.files import FileResponse, send_file, send_from_directory
from flask_restful_async.streaming.follow import follow
from flask_restful_async.streaming.responses import StreamResponse
from flask_restful_async.streaming.sse import Broadcast, Event, EventStream, last_event_id

__all__ = ["EventStream", "Event", "Broadcast", "last_event_id", "send_file",
           "send_from_directory", "FileResponse", "follow", "body_chunks", "streams_body",
           "StreamResponse"]

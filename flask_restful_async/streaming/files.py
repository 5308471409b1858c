"""File responses with Flask's `send_file` semantics, sent zero-copy: `send_file(path)`,
`send_from_directory(root, name)`.

The file is opened and its size, ETag and modification time read when the response is made;
the request's Range / If-Range / If-None-Match / If-Modified-Since headers (ranges.py) decide
between 200, 206 (one range, or several as multipart/byteranges), 304 and 416.  On our server
the bytes go from the file to the socket with sendfile(2) in C (the ASGI zero-copy extension);
on another ASGI server with its zero-copy or pathsend extension if it has one, else read in a
thread; under WSGI through the server's `wsgi.file_wrapper` (sendfile too, where the server
does it, ours included)."""
import asyncio
import io
import mimetypes
import os
import secrets
import stat
import time
from typing import Any, Callable, List, Optional, Tuple, Union
from urllib.parse import quote

from flask import current_app
from flask.globals import _cv_request
from werkzeug.exceptions import NotFound
from werkzeug.http import http_date
from werkzeug.security import safe_join
from flask.wrappers import Response as FlaskResponse

from flask_restful_async.streaming.ranges import decide_ranges, not_modified
from flask_restful_async.streaming.responses import Output

__all__ = ["FileResponse", "send_file", "send_from_directory"]

#: bytes read per step when a file must be read (no zero-copy way to the client)
READ_CHUNK = 256 * 1024

Part = Union[bytes, Tuple[int, int]]  # bytes to send, or (offset, count) of the file


def _request_info() -> Tuple[str, Callable[[str], Optional[str]]]:
    """The request's method and a header getter, without making a request object on our
    servers."""
    ctx = _cv_request.get(None)
    if ctx is None:
        raise RuntimeError("send_file() needs a request context")
    header = getattr(ctx, "header", None)
    if header is not None:
        def get(name: str) -> Optional[str]:
            value = header(name.lower().encode("latin-1"))
            return None if value is None else value.decode("latin-1")
        return ctx.method, get
    headers = ctx.request.headers
    return ctx.request.method, headers.get


def _disposition(kind: str, name: str) -> str:
    """Content-Disposition with the name as plain ASCII and, when it is not, as RFC 6266 /
    RFC 8187 `filename*` (UTF-8, percent-encoded)."""
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        simple = name.encode("ascii", "ignore").decode("ascii").replace('"', "") or "download"
        quoted = quote(name, safe="!#$&+-.^_`|~")
        return '%s; filename="%s"; filename*=UTF-8\'\'%s' % (kind, simple, quoted)
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return '%s; filename="%s"' % (kind, escaped)


class FileResponse(FlaskResponse):
    """A file, or part of it, as a response (see send_file).  `parts` is what the body is:
    file ranges and, for multipart/byteranges, the bytes around them."""

    #: our servers send it on the event loop (`serve`)
    serve_on_loop = True

    def __init__(self, file: Any, path: Optional[str], status: int, headers: Any,
                 parts: List[Part], mimetype: str) -> None:
        super().__init__(None, status=status, headers=headers, mimetype=mimetype,
                         direct_passthrough=True)
        self.file = file
        self.path = path
        self.parts = parts
        self.response = _FileBody(self)

    def close(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            file.close()
        super().close()

    @property
    def fd(self) -> Optional[int]:
        return None if self.file is None else self.file.fileno()

    # -- WSGI ---------------------------------------------------------------------------------

    def get_app_iter(self, environ: Any) -> Any:
        """One file range and a server with `wsgi.file_wrapper`: the file from its offset,
        which the server sends (sendfile where it can) up to Content-Length."""
        wrapper = environ.get("wsgi.file_wrapper")
        if (wrapper is not None and len(self.parts) == 1 and type(self.parts[0]) is tuple
                and environ.get("REQUEST_METHOD") != "HEAD" and self.file is not None):
            offset, _ = self.parts[0]
            self.file.seek(offset)
            file, self.file = self.file, None  # the wrapper closes it
            return wrapper(file, READ_CHUNK)
        return super().get_app_iter(environ)

    # -- our servers ---------------------------------------------------------------------------

    async def serve(self, out: Output) -> None:
        try:
            await out.start(self.status_code, [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                               for k, v in self.headers.items()])
            parts = self.parts
            if out.is_head or not parts:
                await out.body(b"", False)
                return
            last = len(parts) - 1
            for i, part in enumerate(parts):
                more = i < last
                if type(part) is bytes:
                    await out.body(part, more)
                    continue
                offset, count = part
                if out.zerocopy:
                    await out.send({"type": "http.response.zerocopy", "file": self.file,
                                    "offset": offset, "count": count, "more_body": more})
                elif (out.pathsend and self.path is not None and last == 0 and offset == 0
                      and self.status_code == 200):
                    await out.send({"type": "http.response.pathsend", "path": self.path})
                else:
                    await self._read_out(out, offset, count, more)
        finally:
            self.close()

    async def _read_out(self, out: Output, offset: int, count: int, more: bool) -> None:
        """The range read in a thread, a chunk at a time (a server without zero-copy)."""
        loop = asyncio.get_running_loop()
        fd = self.file.fileno()
        end = offset + count
        while offset < end:
            data = await loop.run_in_executor(None, os.pread, fd, min(READ_CHUNK, end - offset),
                                              offset)
            if not data:
                raise OSError("%s: the file is shorter than its announced length"
                              % (self.path or "file"))
            offset += len(data)
            await out.body(data, more or offset < end)


class _FileBody:
    """The body for a WSGI server without `wsgi.file_wrapper` (or for several ranges)."""

    def __init__(self, response: FileResponse) -> None:
        self.response = response

    def __iter__(self) -> Any:
        response = self.response
        for part in response.parts:
            if type(part) is bytes:
                yield part
                continue
            offset, count = part
            fd = response.file.fileno()
            end = offset + count
            while offset < end:
                data = os.pread(fd, min(READ_CHUNK, end - offset), offset)
                if not data:
                    return
                offset += len(data)
                yield data

    def close(self) -> None:
        # Only the file: FileResponse.close (werkzeug's close) calls this one.
        response = self.response
        file, response.file = response.file, None
        if file is not None:
            file.close()


def send_file(path_or_file: Any, mimetype: Optional[str] = None, as_attachment: bool = False,
              download_name: Optional[str] = None, conditional: bool = True,
              etag: Union[bool, str] = True, last_modified: Any = None,
              max_age: Optional[Union[int, Callable[[Optional[str]], Optional[int]]]] = None
              ) -> FileResponse:
    """A file as the response, as Flask's `send_file`: `path_or_file` is a path (relative to
    the app's root path) or a binary file object (sent from its current position);
    `mimetype` (else guessed from the name); `as_attachment` and `download_name` for
    Content-Disposition; `conditional` answers Range, If-Range, If-None-Match and
    If-Modified-Since (206, 304, 416); `etag` (True: made from the file's identity, size and
    modification time; a str: that one; False: none); `last_modified`; `max_age` (seconds the
    client may cache it: `Cache-Control: public, max-age=N`; else `no-cache`)."""
    path: Optional[str] = None
    if isinstance(path_or_file, (str, os.PathLike)):
        path = os.fspath(path_or_file)
        if not os.path.isabs(path):
            path = os.path.join(current_app.root_path, path)
        file = open(path, "rb")
        start = 0
    else:
        file = path_or_file
        if isinstance(file, (bytes, bytearray)) or not hasattr(file, "read"):
            raise TypeError("send_file() takes a path or a binary file object, not %s"
                            % type(path_or_file).__name__)
        start = file.tell() if hasattr(file, "tell") else 0
        name = getattr(file, "name", None)
        if isinstance(name, str) and os.path.isabs(name):
            path = name
    try:
        return _file_response(file, path, start, mimetype, as_attachment, download_name,
                              conditional, etag, last_modified, max_age)
    except BaseException:
        file.close()
        raise


def _file_response(file: Any, path: Optional[str], start: int, mimetype: Optional[str],
                   as_attachment: bool, download_name: Optional[str], conditional: bool,
                   etag: Union[bool, str], last_modified: Any, max_age: Any) -> FileResponse:
    try:
        st = os.fstat(file.fileno())
    except (AttributeError, OSError, ValueError):
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise IsADirectoryError("send_file(): %s is not a regular file" % (path or "the file"))
    if st is None:
        file = _in_memory(file)  # a file object without a descriptor: its bytes, sent as such
        size = len(file.getbuffer()) - start
        mtime = None
    else:
        size = st.st_size - start
        mtime = int(st.st_mtime)
    if download_name is None and path is not None:
        download_name = os.path.basename(path)
    if mimetype is None:
        guessed = mimetypes.guess_type(download_name or "")[0] if download_name else None
        mimetype = guessed or "application/octet-stream"
    headers: List[Tuple[str, str]] = []
    if download_name is not None:
        headers.append(("Content-Disposition",
                        _disposition("attachment" if as_attachment else "inline", download_name)))
    elif as_attachment:
        raise TypeError("send_file(as_attachment=True) needs a download_name for a file object")
    if last_modified is not None:
        if hasattr(last_modified, "timestamp"):
            mtime = int(last_modified.timestamp())
        else:
            mtime = int(last_modified)
    if mtime is not None:
        headers.append(("Last-Modified", http_date(mtime)))
    tag: Optional[str] = None
    if isinstance(etag, str):
        tag = etag if etag.startswith(('"', 'W/"')) else '"%s"' % etag
    elif etag and st is not None:
        tag = '"%x-%x-%x"' % (st.st_mtime_ns, st.st_size, st.st_ino)
    if tag is not None:
        headers.append(("ETag", tag))
    if callable(max_age):
        max_age = max_age(path)
    if max_age is not None and max_age > 0:
        headers.append(("Cache-Control", "public, max-age=%d" % max_age))
        headers.append(("Expires", http_date(int(time.time() + max_age))))
    else:
        headers.append(("Cache-Control", "no-cache"))

    status = 200
    parts: List[Part] = [(start, size)] if size else []
    if conditional:
        headers.append(("Accept-Ranges", "bytes"))
        method, header = _request_info()
        if not_modified(method, header("If-None-Match"), header("If-Modified-Since"), tag, mtime):
            file.close()
            return FileResponse(None, path, 304, headers, [], mimetype)
        decision = decide_ranges(method, header("Range"), header("If-Range"), size, tag, mtime)
        if decision.status == 416:
            headers.append(("Content-Range", "bytes */%d" % size))
            headers.append(("Content-Length", "0"))
            file.close()
            return FileResponse(None, path, 416, headers, [], mimetype)
        if decision.status == 206:
            status = 206
            if len(decision.ranges) == 1:
                first, last = decision.ranges[0]
                headers.append(("Content-Range", "bytes %d-%d/%d" % (first, last, size)))
                parts = [(start + first, last - first + 1)]
            else:
                parts, boundary = _multipart(decision.ranges, start, size, mimetype)
                mimetype = "multipart/byteranges; boundary=" + boundary
    if st is None:  # no descriptor: the ranges as bytes
        buffer = file.getbuffer()
        parts = [p if type(p) is bytes else bytes(buffer[p[0]:p[0] + p[1]]) for p in parts]
        del buffer
        file.close()
        file = None
    length = sum(len(p) if type(p) is bytes else p[1] for p in parts)
    headers.append(("Content-Length", str(length)))
    return FileResponse(file, path, status, headers, parts, mimetype)


def _multipart(ranges: List[Tuple[int, int]], start: int, size: int,
               mimetype: str) -> Tuple[List[Part], str]:
    """The parts of a multipart/byteranges body (RFC 9110 14.6): a header before each range
    and the closing delimiter after the last."""
    boundary = secrets.token_hex(16)
    parts: List[Part] = []
    for i, (first, last) in enumerate(ranges):
        head = ("%s--%s\r\nContent-Type: %s\r\nContent-Range: bytes %d-%d/%d\r\n\r\n"
                % ("\r\n" if i else "", boundary, mimetype, first, last, size))
        parts.append(head.encode("latin-1"))
        parts.append((start + first, last - first + 1))
    parts.append(("\r\n--%s--\r\n" % boundary).encode("latin-1"))
    return parts, boundary


class _in_memory:
    """A file object with no descriptor (BytesIO, a wrapper...): its bytes, read once."""

    def __init__(self, file: Any) -> None:
        if isinstance(file, io.BytesIO):
            self._buffer = file
        else:
            self._buffer = io.BytesIO(file.read())
            file.close()

    def getbuffer(self) -> Any:
        return self._buffer.getbuffer()

    def close(self) -> None:
        self._buffer.close()


def send_from_directory(directory: Any, path: str, **kwargs: Any) -> FileResponse:
    """`path` inside `directory` (relative to the app's root path) as send_file sends it;
    404 for a name that leaves the directory (`..`, an absolute path) or a file that is not
    there."""
    directory = os.fspath(directory)
    if not os.path.isabs(directory):
        directory = os.path.join(current_app.root_path, directory)
    full = safe_join(directory, path)
    if full is None:
        raise NotFound()
    try:
        return send_file(full, **kwargs)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise NotFound() from None

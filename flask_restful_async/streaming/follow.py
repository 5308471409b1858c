"""`follow(path)`: the lines appended to a file, as they are written (`tail -F`).

    async for line in follow("/var/log/app.log"):
        ...

Woken by the file system (`_core.FileEvents`: libuv's uv_fs_event on the file's directory, on
our server's loop or any asyncio loop), never by a timer.  It survives rotation: when the name
points to a new file (renamed away and recreated) the rest of the old one is read, then the new
one from its start; a file truncated in place is read again from its start; a file that does
not exist yet is waited for."""
import asyncio
import os
from typing import AsyncIterator, Optional

from flask_restful_async._core import FileEvents

__all__ = ["follow"]

#: at most this many bytes are read per step; a line longer than MAX_LINE is cut there
READ_SIZE = 64 * 1024
MAX_LINE = 1 << 20


async def follow(path: "os.PathLike[str] | str", *, from_start: bool = False,
                 encoding: str = "utf-8", errors: str = "replace") -> AsyncIterator[str]:
    """Each complete line (without its line break) appended to `path` from now on (or from
    the file's start with `from_start`).  A line still being written is held until its line
    break comes.  The iterator runs until it is closed (`aclose()`, or the response it feeds
    ends)."""
    path = os.fspath(path)
    loop = asyncio.get_running_loop()
    wake: Optional[asyncio.Future] = None

    def changed() -> None:
        if wake is not None and not wake.done():
            wake.set_result(None)

    watcher = FileEvents(loop, path, changed)
    fd = -1
    ino = None
    pending = b""
    try:
        fd, ino = _open(path)
        if fd >= 0 and not from_start:
            os.lseek(fd, 0, os.SEEK_END)
        while True:
            progressed = False
            if fd >= 0:
                data = os.read(fd, READ_SIZE)
                if data:
                    progressed = True
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        yield line.rstrip(b"\r").decode(encoding, errors)
                    if len(pending) > MAX_LINE:
                        yield pending.decode(encoding, errors)
                        pending = b""
                    continue
                # at the end of what we have: has the name moved to another file, or has the
                # file been cut short?
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    st = None
                if st is not None and st.st_ino != ino:
                    os.close(fd)  # (its rest was read above)
                    fd, ino = _open(path)
                    pending = b""
                    progressed = True
                elif st is not None and st.st_size < os.lseek(fd, 0, os.SEEK_CUR):
                    os.lseek(fd, 0, os.SEEK_SET)
                    pending = b""
                    progressed = True
            else:
                fd, ino = _open(path)
                progressed = fd >= 0
            if progressed:
                continue
            wake = loop.create_future()
            await wake
            wake = None
    finally:
        watcher.close()
        if fd >= 0:
            os.close(fd)


def _open(path: str) -> "tuple[int, Optional[int]]":
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return -1, None
    return fd, os.fstat(fd).st_ino

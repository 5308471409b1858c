"""Signalling between a test and a request in flight: the handler creates `started-<pid>` in
$CLI_TEST_DIR, then waits until the test creates `release` there."""
import asyncio
import os
import time
from pathlib import Path


def _dir() -> Path:
    return Path(os.environ["CLI_TEST_DIR"])


def mark_started() -> None:
    (_dir() / f"started-{os.getpid()}").write_text("")


def released() -> bool:
    return (_dir() / "release").exists()


async def wait_released_async() -> None:
    mark_started()
    while not released():
        await asyncio.sleep(0.01)


def wait_released_sync() -> None:
    mark_started()
    while not released():
        time.sleep(0.01)


def record(event: str) -> None:
    """Append one line to $CLI_TEST_DIR/events (lifespan apps)."""
    with open(_dir() / "events", "a") as f:
        f.write(f"{event} {os.getpid()}\n")

"""Lua scripts registered once and run by their SHA1 (redis-py's `register_script`)::

    incr_by = redis.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    await incr_by(keys=["counter"], args=[5])

EVALSHA first; a Redis that does not know the script yet (a restart, SCRIPT FLUSH) answers
NOSCRIPT, and the script goes once as EVAL, which also caches it there."""
import hashlib
from typing import Any, Optional, Sequence

from flask_restful_async.redis.exceptions import NoScriptError

__all__ = ["Script"]


class Script:
    """An awaitable callable for one Lua script."""

    def __init__(self, client: Any, script: Any) -> None:
        self.client = client
        self.script = script
        raw = script.encode("utf-8") if isinstance(script, str) else bytes(script)
        self.sha = hashlib.sha1(raw).hexdigest()

    def __repr__(self) -> str:
        return "<Script sha=%s>" % self.sha

    async def __call__(self, keys: Optional[Sequence[Any]] = None,
                       args: Optional[Sequence[Any]] = None, client: Any = None) -> Any:
        keys, args = list(keys or ()), list(args or ())
        target = self.client if client is None else client
        from flask_restful_async.redis.pipeline import Pipeline
        if isinstance(target, Pipeline):
            # queued: Redis must know the script when the pipeline runs
            await self.client.script_load(self.script)
            return target.evalsha(self.sha, len(keys), *keys, *args)
        try:
            return await target.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await target.eval(self.script, len(keys), *keys, *args)

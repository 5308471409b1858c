"""Client-side caching (`Redis(..., client_cache=N)`): the replies of read commands on one key
kept in process, up to N entries (least recently used out first), and dropped when Redis says
the key changed.  The shared connection turns on RESP3 `CLIENT TRACKING`: Redis remembers the
keys it read and pushes `invalidate` for each one another client (or this one) writes,
expires or evicts; a lost connection drops everything, since pushes may have been missed.

A read whose key is invalidated while the read is in flight is not kept: the push may arrive
before the coroutine that asked resumes, so each read notes the invalidation count when it is
sent and keeps its reply only if its key was not invalidated since."""
import collections
import copy
from typing import Any, Dict, Hashable, Optional, Tuple

__all__ = ["ClientCache", "CACHEABLE"]

#: read-only commands on one key (the first argument) whose reply only a write can change
CACHEABLE = frozenset({
    "GET", "GETRANGE", "STRLEN", "HGET", "HGETALL", "HMGET", "HKEYS", "HVALS", "HLEN",
    "HEXISTS", "HSTRLEN", "LRANGE", "LLEN", "LINDEX", "SMEMBERS", "SISMEMBER", "SMISMEMBER",
    "SCARD", "ZSCORE", "ZMSCORE", "ZRANGE", "ZCARD", "ZRANK", "ZREVRANK", "ZCOUNT",
    "XRANGE", "XREVRANGE", "XLEN", "TYPE", "EXISTS",
})


def _key_bytes(key: Any) -> bytes:
    if isinstance(key, bytes):
        return key
    return str(key).encode("utf-8")


class ClientCache:
    """Entries keyed by the command's arguments, indexed by key for invalidation."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: "collections.OrderedDict[Tuple[Hashable, ...], Any]" = collections.OrderedDict()
        self._by_key: Dict[bytes, set] = {}
        self._invalidations = 0
        # key -> invalidation count when it was last invalidated, for keys with reads in flight
        self._reading: Dict[bytes, int] = {}
        self._touched: Dict[bytes, int] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, args: Tuple[Any, ...]) -> Tuple[bool, Any]:
        try:
            value = self._entries[args]
        except (KeyError, TypeError):
            self.misses += 1
            return False, None
        self._entries.move_to_end(args)
        self.hits += 1
        if isinstance(value, (list, dict)):  # the caller may change what it gets
            value = copy.deepcopy(value)
        return True, value

    def begin(self, key: Any) -> Tuple[bytes, int]:
        """A read of `key` is being sent; the token to give `keep`/`end`."""
        raw = _key_bytes(key)
        self._reading[raw] = self._reading.get(raw, 0) + 1
        return raw, self._invalidations

    def end(self, token: Tuple[bytes, int], args: Optional[Tuple[Any, ...]] = None,
            value: Any = None) -> None:
        """The read came back (args given: keep its reply unless invalidated meanwhile)."""
        raw, seen = token
        if args is not None and self._touched.get(raw, -1) <= seen:
            try:
                hash(args)
            except TypeError:
                args = None
            if args is not None:
                if isinstance(value, (list, dict)):
                    value = copy.deepcopy(value)
                self._entries[args] = value
                self._entries.move_to_end(args)
                self._by_key.setdefault(raw, set()).add(args)
                while len(self._entries) > self.size:
                    old, _ = self._entries.popitem(last=False)
                    self._unindex(old)
        left = self._reading.get(raw, 1) - 1
        if left:
            self._reading[raw] = left
        else:
            self._reading.pop(raw, None)
            self._touched.pop(raw, None)

    def _unindex(self, args: Tuple[Any, ...]) -> None:
        raw = _key_bytes(args[1])
        entries = self._by_key.get(raw)
        if entries is not None:
            entries.discard(args)
            if not entries:
                del self._by_key[raw]

    def invalidate(self, keys: Any) -> None:
        """An `invalidate` push: these keys (None: all of them) changed."""
        self._invalidations += 1
        if keys is None:
            self.clear()
            for raw in self._reading:
                self._touched[raw] = self._invalidations
            return
        for key in keys:
            raw = _key_bytes(key)
            for args in self._by_key.pop(raw, ()):
                self._entries.pop(args, None)
            if raw in self._reading:
                self._touched[raw] = self._invalidations

    def clear(self) -> None:
        self._entries.clear()
        self._by_key.clear()

    def lost(self) -> None:
        """The connection that tracked our reads dropped: nothing cached can be trusted."""
        self.invalidate(None)

    def on_push(self, message: list) -> None:
        if len(message) >= 2 and message[0] in (b"invalidate", "invalidate"):
            self.invalidate(message[1])

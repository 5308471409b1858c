"""The commands, with redis-py's method names, arguments and results: each method builds the
command and hands it to `execute_command(*args, **options)`; the client sends it and awaits the
reply, a pipeline queues it.  What redis-py turns a reply into (True for OK, a float for a score,
a dict for HGETALL, ...) is `RESPONSE_CALLBACKS`, keyed by command name; `options` carry what a
callback needs (withscores, ...)."""
import datetime
from typing import (Any, AsyncIterator, Callable, Dict, List, Mapping, Optional,
                    Sequence, Tuple, Union)

from flask_restful_async.redis.exceptions import DataError

__all__ = ["CommandsMixin", "RESPONSE_CALLBACKS", "BLOCKING_COMMANDS", "str_if_bytes"]

KeyT = Union[bytes, str]
ExpiryT = Union[int, float, datetime.timedelta]
AbsExpiryT = Union[int, datetime.datetime]

#: Commands that may hold their connection for a long time: they run on a connection of their own.
BLOCKING_COMMANDS = frozenset({
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
    "WAIT", "WAITAOF",
})


def str_if_bytes(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _is_ok(reply: Any, **options: Any) -> bool:
    return str_if_bytes(reply) == "OK"


def _bool(reply: Any, **options: Any) -> Any:
    return bool(reply) if isinstance(reply, int) else reply


def _float_or_none(reply: Any, **options: Any) -> Optional[float]:
    return None if reply is None else float(reply)


def _pairs_to_dict(reply: Any, **options: Any) -> Any:
    if reply is None or isinstance(reply, dict):
        return reply or {}
    it = iter(reply)
    return dict(zip(it, it))


def _as_set(reply: Any, **options: Any) -> Any:
    return set(reply) if reply is not None else set()


def _scored(reply: Any, withscores: bool = False, score_cast_func: Callable[[Any], Any] = float,
            **options: Any) -> Any:
    """[member, score, ...] -> [(member, score), ...] when withscores."""
    if not withscores or not reply:
        return reply
    if reply and isinstance(reply[0], list):  # RESP3 pairs
        return [(m, score_cast_func(s)) for m, s in reply]
    it = iter(reply)
    return [(m, score_cast_func(s)) for m, s in zip(it, it)]


def _zadd(reply: Any, as_score: bool = False, **options: Any) -> Any:
    """ZADD ... INCR answers the new score."""
    return float(reply) if as_score and reply is not None else reply


def _zpop(reply: Any, **options: Any) -> Any:
    if not reply:
        return []
    if isinstance(reply[0], list):
        return [(m, float(s)) for m, s in reply]
    it = iter(reply)
    return [(m, float(s)) for m, s in zip(it, it)]


def _bzpop(reply: Any, **options: Any) -> Any:
    return reply and (reply[0], reply[1], float(reply[2]))


def _tuple_or_none(reply: Any, **options: Any) -> Any:
    return tuple(reply) if reply else None


def _set_result(reply: Any, get: bool = False, **options: Any) -> Any:
    if get:
        return reply
    return True if str_if_bytes(reply) == "OK" else None


def _ping(reply: Any, **options: Any) -> Any:
    return str_if_bytes(reply) == "PONG"


def _time(reply: Any, **options: Any) -> Tuple[int, int]:
    return int(reply[0]), int(reply[1])


def _scan(reply: Any, **options: Any) -> Tuple[int, Any]:
    return int(reply[0]), reply[1]


def _hscan(reply: Any, **options: Any) -> Tuple[int, Dict[Any, Any]]:
    cursor, data = reply
    return int(cursor), _pairs_to_dict(data)


def _zscan(reply: Any, score_cast_func: Callable[[Any], Any] = float, **options: Any) -> Any:
    cursor, data = reply
    it = iter(data)
    return int(cursor), [(m, score_cast_func(s)) for m, s in zip(it, it)]


def _info_value(value: str) -> Any:
    if "," not in value or "=" not in value:
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return {k: _info_value(v) for k, _, v in (item.partition("=") for item in value.split(","))}


def _info(reply: Any, **options: Any) -> Dict[str, Any]:
    """INFO's text as a dict of typed values (sections flattened, as redis-py does)."""
    out: Dict[str, Any] = {}
    for line in str_if_bytes(reply).splitlines():
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep:
            out[key] = _info_value(value)
        else:
            out.setdefault("__raw__", []).append(line)
    return out


def _config_get(reply: Any, **options: Any) -> Dict[Any, Any]:
    if isinstance(reply, dict):
        return {str_if_bytes(k): str_if_bytes(v) for k, v in reply.items()}
    it = iter(reply or ())
    return {str_if_bytes(k): str_if_bytes(v) for k, v in zip(it, it)}


def _stream_entries(reply: Any) -> Any:
    if reply is None:
        return []
    return [(entry_id, _pairs_to_dict(fields) if fields is not None else None)
            for entry_id, fields in reply]


def _xrange(reply: Any, **options: Any) -> Any:
    return _stream_entries(reply)


def _xread(reply: Any, **options: Any) -> Any:
    if reply is None:
        return []
    if isinstance(reply, dict):  # RESP3
        return [[name, _stream_entries(entries)] for name, entries in reply.items()]
    return [[name, _stream_entries(entries)] for name, entries in reply]


def _bool_list(reply: Any, **options: Any) -> List[bool]:
    return [bool(x) for x in reply]


def _floats(reply: Any, **options: Any) -> List[Optional[float]]:
    return [None if x is None else float(x) for x in reply]


def _str(reply: Any, **options: Any) -> Any:
    return str_if_bytes(reply)


#: command name -> what redis-py returns instead of the raw reply
RESPONSE_CALLBACKS: Dict[str, Callable[..., Any]] = {
    **{cmd: _is_ok for cmd in (
        "FLUSHALL", "FLUSHDB", "LSET", "LTRIM", "MSET", "PFMERGE", "RENAME", "SELECT",
        "SWAPDB", "WATCH", "UNWATCH", "SETEX", "PSETEX", "HMSET", "CLIENT SETNAME",
        "CONFIG SET", "SCRIPT FLUSH", "XGROUP CREATE", "AUTH", "MIGRATE", "RESTORE",
        "READONLY", "READWRITE", "DISCARD")},
    **{cmd: _bool for cmd in (
        "EXPIRE", "EXPIREAT", "PEXPIRE", "PEXPIREAT", "PERSIST", "HEXISTS", "MOVE",
        "MSETNX", "RENAMENX", "SMOVE", "SETNX", "COPY")},
    **{cmd: _as_set for cmd in ("SMEMBERS", "SDIFF", "SINTER", "SUNION")},
    **{cmd: _float_or_none for cmd in ("ZSCORE", "ZINCRBY", "INCRBYFLOAT", "HINCRBYFLOAT")},
    **{cmd: _scored for cmd in (
        "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZUNION", "ZINTER",
        "ZDIFF", "ZRANDMEMBER")},
    **{cmd: _zpop for cmd in ("ZPOPMIN", "ZPOPMAX")},
    **{cmd: _bzpop for cmd in ("BZPOPMIN", "BZPOPMAX")},
    **{cmd: _tuple_or_none for cmd in ("BLPOP", "BRPOP")},
    **{cmd: _xrange for cmd in ("XRANGE", "XREVRANGE")},
    **{cmd: _xread for cmd in ("XREAD", "XREADGROUP")},
    "SET": _set_result,
    "ZADD": _zadd,
    "PING": _ping,
    "TIME": _time,
    "SCAN": _scan,
    "SSCAN": _scan,
    "HSCAN": _hscan,
    "ZSCAN": _zscan,
    "HGETALL": _pairs_to_dict,
    "INFO": _info,
    "CONFIG GET": _config_get,
    "SCRIPT EXISTS": _bool_list,
    "SCRIPT LOAD": _str,
    "SMISMEMBER": _bool_list,
    "ZMSCORE": _floats,
    "CLIENT GETNAME": _str,
    "RANDOMKEY": lambda r, **o: r,
}


def _seconds(value: ExpiryT) -> int:
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds())
    return int(value)


def _millis(value: ExpiryT) -> int:
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)


def _at_seconds(value: AbsExpiryT) -> int:
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    return int(value)


def _at_millis(value: AbsExpiryT) -> int:
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def _keys_and(keys: Union[KeyT, Sequence[KeyT]], args: Tuple[Any, ...]) -> List[Any]:
    """redis-py's `list_or_args`: a key or a sequence of keys, then more keys."""
    if isinstance(keys, (bytes, str)):
        out = [keys]
    else:
        out = list(keys)
    out.extend(args)
    return out


def _expire_flags(nx: bool, xx: bool, gt: bool, lt: bool) -> List[str]:
    return [flag for flag, on in (("NX", nx), ("XX", xx), ("GT", gt), ("LT", lt)) if on]


class CommandsMixin:
    """redis-py's command methods (strings, counters, keys, hashes, lists, sets, sorted sets,
    streams, scripting, pub/sub publishing, server)."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        raise NotImplementedError

    # ---- strings and counters -------------------------------------------------------------

    def get(self, name: KeyT) -> Any:
        return self.execute_command("GET", name)

    def set(self, name: KeyT, value: Any, ex: Optional[ExpiryT] = None,
            px: Optional[ExpiryT] = None, nx: bool = False, xx: bool = False,
            keepttl: bool = False, get: bool = False, exat: Optional[AbsExpiryT] = None,
            pxat: Optional[AbsExpiryT] = None) -> Any:
        args: List[Any] = ["SET", name, value]
        if ex is not None:
            args += ["EX", _seconds(ex)]
        if px is not None:
            args += ["PX", _millis(px)]
        if exat is not None:
            args += ["EXAT", _at_seconds(exat)]
        if pxat is not None:
            args += ["PXAT", _at_millis(pxat)]
        if keepttl:
            args.append("KEEPTTL")
        if nx:
            args.append("NX")
        if xx:
            args.append("XX")
        if get:
            args.append("GET")
        return self.execute_command(*args, get=get)

    def setnx(self, name: KeyT, value: Any) -> Any:
        return self.execute_command("SETNX", name, value)

    def setex(self, name: KeyT, time: ExpiryT, value: Any) -> Any:
        return self.execute_command("SETEX", name, _seconds(time), value)

    def psetex(self, name: KeyT, time_ms: ExpiryT, value: Any) -> Any:
        return self.execute_command("PSETEX", name, _millis(time_ms), value)

    def getset(self, name: KeyT, value: Any) -> Any:
        return self.execute_command("GETSET", name, value)

    def getdel(self, name: KeyT) -> Any:
        return self.execute_command("GETDEL", name)

    def getex(self, name: KeyT, ex: Optional[ExpiryT] = None, px: Optional[ExpiryT] = None,
              exat: Optional[AbsExpiryT] = None, pxat: Optional[AbsExpiryT] = None,
              persist: bool = False) -> Any:
        args: List[Any] = ["GETEX", name]
        if ex is not None:
            args += ["EX", _seconds(ex)]
        if px is not None:
            args += ["PX", _millis(px)]
        if exat is not None:
            args += ["EXAT", _at_seconds(exat)]
        if pxat is not None:
            args += ["PXAT", _at_millis(pxat)]
        if persist:
            args.append("PERSIST")
        return self.execute_command(*args)

    def mget(self, keys: Union[KeyT, Sequence[KeyT]], *args: KeyT) -> Any:
        return self.execute_command("MGET", *_keys_and(keys, args))

    def mset(self, mapping: Mapping[KeyT, Any]) -> Any:
        items: List[Any] = []
        for pair in mapping.items():
            items.extend(pair)
        return self.execute_command("MSET", *items)

    def msetnx(self, mapping: Mapping[KeyT, Any]) -> Any:
        items: List[Any] = []
        for pair in mapping.items():
            items.extend(pair)
        return self.execute_command("MSETNX", *items)

    def append(self, key: KeyT, value: Any) -> Any:
        return self.execute_command("APPEND", key, value)

    def strlen(self, name: KeyT) -> Any:
        return self.execute_command("STRLEN", name)

    def getrange(self, key: KeyT, start: int, end: int) -> Any:
        return self.execute_command("GETRANGE", key, start, end)

    def setrange(self, name: KeyT, offset: int, value: Any) -> Any:
        return self.execute_command("SETRANGE", name, offset, value)

    def incr(self, name: KeyT, amount: int = 1) -> Any:
        return self.incrby(name, amount)

    def incrby(self, name: KeyT, amount: int = 1) -> Any:
        return self.execute_command("INCRBY", name, amount)

    def incrbyfloat(self, name: KeyT, amount: float = 1.0) -> Any:
        return self.execute_command("INCRBYFLOAT", name, amount)

    def decr(self, name: KeyT, amount: int = 1) -> Any:
        return self.decrby(name, amount)

    def decrby(self, name: KeyT, amount: int = 1) -> Any:
        return self.execute_command("DECRBY", name, amount)

    # ---- keys -----------------------------------------------------------------------------

    def delete(self, *names: KeyT) -> Any:
        return self.execute_command("DEL", *names)

    def unlink(self, *names: KeyT) -> Any:
        return self.execute_command("UNLINK", *names)

    def exists(self, *names: KeyT) -> Any:
        return self.execute_command("EXISTS", *names)

    def touch(self, *names: KeyT) -> Any:
        return self.execute_command("TOUCH", *names)

    def expire(self, name: KeyT, time: ExpiryT, nx: bool = False, xx: bool = False,
               gt: bool = False, lt: bool = False) -> Any:
        return self.execute_command("EXPIRE", name, _seconds(time), *_expire_flags(nx, xx, gt, lt))

    def pexpire(self, name: KeyT, time: ExpiryT, nx: bool = False, xx: bool = False,
                gt: bool = False, lt: bool = False) -> Any:
        return self.execute_command("PEXPIRE", name, _millis(time), *_expire_flags(nx, xx, gt, lt))

    def expireat(self, name: KeyT, when: AbsExpiryT, nx: bool = False, xx: bool = False,
                 gt: bool = False, lt: bool = False) -> Any:
        return self.execute_command("EXPIREAT", name, _at_seconds(when),
                                    *_expire_flags(nx, xx, gt, lt))

    def pexpireat(self, name: KeyT, when: AbsExpiryT, nx: bool = False, xx: bool = False,
                  gt: bool = False, lt: bool = False) -> Any:
        return self.execute_command("PEXPIREAT", name, _at_millis(when),
                                    *_expire_flags(nx, xx, gt, lt))

    def ttl(self, name: KeyT) -> Any:
        return self.execute_command("TTL", name)

    def pttl(self, name: KeyT) -> Any:
        return self.execute_command("PTTL", name)

    def persist(self, name: KeyT) -> Any:
        return self.execute_command("PERSIST", name)

    def type(self, name: KeyT) -> Any:
        return self.execute_command("TYPE", name)

    def rename(self, src: KeyT, dst: KeyT) -> Any:
        return self.execute_command("RENAME", src, dst)

    def renamenx(self, src: KeyT, dst: KeyT) -> Any:
        return self.execute_command("RENAMENX", src, dst)

    def copy(self, source: KeyT, destination: KeyT, destination_db: Optional[int] = None,
             replace: bool = False) -> Any:
        args: List[Any] = ["COPY", source, destination]
        if destination_db is not None:
            args += ["DB", destination_db]
        if replace:
            args.append("REPLACE")
        return self.execute_command(*args)

    def keys(self, pattern: KeyT = "*") -> Any:
        return self.execute_command("KEYS", pattern, keys_pattern=True)

    def randomkey(self) -> Any:
        return self.execute_command("RANDOMKEY")

    def scan(self, cursor: int = 0, match: Optional[KeyT] = None, count: Optional[int] = None,
             _type: Optional[str] = None) -> Any:
        args: List[Any] = ["SCAN", cursor]
        if match is not None:
            args += ["MATCH", match]
        if count is not None:
            args += ["COUNT", count]
        if _type is not None:
            args += ["TYPE", _type]
        return self.execute_command(*args, scan_match=match is not None)

    async def scan_iter(self, match: Optional[KeyT] = None, count: Optional[int] = None,
                        _type: Optional[str] = None) -> AsyncIterator[Any]:
        cursor = None
        while cursor != 0:
            cursor, keys = await self.scan(cursor or 0, match, count, _type)
            for key in keys:
                yield key

    # ---- hashes ---------------------------------------------------------------------------

    def hget(self, name: KeyT, key: Any) -> Any:
        return self.execute_command("HGET", name, key)

    def hset(self, name: KeyT, key: Any = None, value: Any = None,
             mapping: Optional[Mapping[Any, Any]] = None, items: Optional[List[Any]] = None) -> Any:
        if key is None and not mapping and not items:
            raise DataError("'hset' with no key value pairs")
        args: List[Any] = []
        if key is not None:
            args += [key, value]
        if mapping:
            for pair in mapping.items():
                args.extend(pair)
        if items:
            args.extend(items)
        return self.execute_command("HSET", name, *args)

    def hsetnx(self, name: KeyT, key: Any, value: Any) -> Any:
        return self.execute_command("HSETNX", name, key, value)

    def hmset(self, name: KeyT, mapping: Mapping[Any, Any]) -> Any:
        if not mapping:
            raise DataError("'hmset' with 'mapping' of length 0")
        items: List[Any] = []
        for pair in mapping.items():
            items.extend(pair)
        return self.execute_command("HMSET", name, *items)

    def hmget(self, name: KeyT, keys: Union[Any, Sequence[Any]], *args: Any) -> Any:
        return self.execute_command("HMGET", name, *_keys_and(keys, args))

    def hgetall(self, name: KeyT) -> Any:
        return self.execute_command("HGETALL", name)

    def hdel(self, name: KeyT, *keys: Any) -> Any:
        return self.execute_command("HDEL", name, *keys)

    def hexists(self, name: KeyT, key: Any) -> Any:
        return self.execute_command("HEXISTS", name, key)

    def hincrby(self, name: KeyT, key: Any, amount: int = 1) -> Any:
        return self.execute_command("HINCRBY", name, key, amount)

    def hincrbyfloat(self, name: KeyT, key: Any, amount: float = 1.0) -> Any:
        return self.execute_command("HINCRBYFLOAT", name, key, amount)

    def hkeys(self, name: KeyT) -> Any:
        return self.execute_command("HKEYS", name)

    def hvals(self, name: KeyT) -> Any:
        return self.execute_command("HVALS", name)

    def hlen(self, name: KeyT) -> Any:
        return self.execute_command("HLEN", name)

    def hstrlen(self, name: KeyT, key: Any) -> Any:
        return self.execute_command("HSTRLEN", name, key)

    def hrandfield(self, key: KeyT, count: Optional[int] = None, withvalues: bool = False) -> Any:
        args: List[Any] = ["HRANDFIELD", key]
        if count is not None:
            args.append(count)
        if withvalues:
            args.append("WITHVALUES")
        return self.execute_command(*args)

    def hscan(self, name: KeyT, cursor: int = 0, match: Optional[Any] = None,
              count: Optional[int] = None) -> Any:
        args: List[Any] = ["HSCAN", name, cursor]
        if match is not None:
            args += ["MATCH", match]
        if count is not None:
            args += ["COUNT", count]
        return self.execute_command(*args)

    async def hscan_iter(self, name: KeyT, match: Optional[Any] = None,
                         count: Optional[int] = None) -> AsyncIterator[Tuple[Any, Any]]:
        cursor = None
        while cursor != 0:
            cursor, data = await self.hscan(name, cursor or 0, match, count)
            for item in data.items():
                yield item

    # ---- lists ----------------------------------------------------------------------------

    def lpush(self, name: KeyT, *values: Any) -> Any:
        return self.execute_command("LPUSH", name, *values)

    def rpush(self, name: KeyT, *values: Any) -> Any:
        return self.execute_command("RPUSH", name, *values)

    def lpushx(self, name: KeyT, *values: Any) -> Any:
        return self.execute_command("LPUSHX", name, *values)

    def rpushx(self, name: KeyT, *values: Any) -> Any:
        return self.execute_command("RPUSHX", name, *values)

    def lpop(self, name: KeyT, count: Optional[int] = None) -> Any:
        return self.execute_command("LPOP", name, *(() if count is None else (count,)))

    def rpop(self, name: KeyT, count: Optional[int] = None) -> Any:
        return self.execute_command("RPOP", name, *(() if count is None else (count,)))

    def lrange(self, name: KeyT, start: int, end: int) -> Any:
        return self.execute_command("LRANGE", name, start, end)

    def llen(self, name: KeyT) -> Any:
        return self.execute_command("LLEN", name)

    def lindex(self, name: KeyT, index: int) -> Any:
        return self.execute_command("LINDEX", name, index)

    def lset(self, name: KeyT, index: int, value: Any) -> Any:
        return self.execute_command("LSET", name, index, value)

    def lrem(self, name: KeyT, count: int, value: Any) -> Any:
        return self.execute_command("LREM", name, count, value)

    def ltrim(self, name: KeyT, start: int, end: int) -> Any:
        return self.execute_command("LTRIM", name, start, end)

    def linsert(self, name: KeyT, where: str, refvalue: Any, value: Any) -> Any:
        return self.execute_command("LINSERT", name, where, refvalue, value)

    def lpos(self, name: KeyT, value: Any, rank: Optional[int] = None,
             count: Optional[int] = None, maxlen: Optional[int] = None) -> Any:
        args: List[Any] = ["LPOS", name, value]
        if rank is not None:
            args += ["RANK", rank]
        if count is not None:
            args += ["COUNT", count]
        if maxlen is not None:
            args += ["MAXLEN", maxlen]
        return self.execute_command(*args)

    def lmove(self, first_list: KeyT, second_list: KeyT, src: str = "LEFT",
              dest: str = "RIGHT") -> Any:
        return self.execute_command("LMOVE", first_list, second_list, src, dest)

    def rpoplpush(self, src: KeyT, dst: KeyT) -> Any:
        return self.execute_command("RPOPLPUSH", src, dst)

    def blpop(self, keys: Union[KeyT, Sequence[KeyT]], timeout: Optional[float] = 0) -> Any:
        return self.execute_command("BLPOP", *_keys_and(keys, ()), timeout or 0)

    def brpop(self, keys: Union[KeyT, Sequence[KeyT]], timeout: Optional[float] = 0) -> Any:
        return self.execute_command("BRPOP", *_keys_and(keys, ()), timeout or 0)

    def brpoplpush(self, src: KeyT, dst: KeyT, timeout: Optional[float] = 0) -> Any:
        return self.execute_command("BRPOPLPUSH", src, dst, timeout or 0)

    def blmove(self, first_list: KeyT, second_list: KeyT, timeout: float, src: str = "LEFT",
               dest: str = "RIGHT") -> Any:
        return self.execute_command("BLMOVE", first_list, second_list, src, dest, timeout)

    # ---- sets -----------------------------------------------------------------------------

    def sadd(self, name: KeyT, *values: Any) -> Any:
        return self.execute_command("SADD", name, *values)

    def srem(self, name: KeyT, *values: Any) -> Any:
        return self.execute_command("SREM", name, *values)

    def smembers(self, name: KeyT) -> Any:
        return self.execute_command("SMEMBERS", name)

    def sismember(self, name: KeyT, value: Any) -> Any:
        return self.execute_command("SISMEMBER", name, value)

    def smismember(self, name: KeyT, values: Union[Any, Sequence[Any]], *args: Any) -> Any:
        return self.execute_command("SMISMEMBER", name, *_keys_and(values, args))

    def scard(self, name: KeyT) -> Any:
        return self.execute_command("SCARD", name)

    def spop(self, name: KeyT, count: Optional[int] = None) -> Any:
        return self.execute_command("SPOP", name, *(() if count is None else (count,)))

    def srandmember(self, name: KeyT, number: Optional[int] = None) -> Any:
        return self.execute_command("SRANDMEMBER", name, *(() if number is None else (number,)))

    def smove(self, src: KeyT, dst: KeyT, value: Any) -> Any:
        return self.execute_command("SMOVE", src, dst, value)

    def sinter(self, keys: Union[KeyT, Sequence[KeyT]], *args: KeyT) -> Any:
        return self.execute_command("SINTER", *_keys_and(keys, args))

    def sinterstore(self, dest: KeyT, keys: Union[KeyT, Sequence[KeyT]], *args: KeyT) -> Any:
        return self.execute_command("SINTERSTORE", dest, *_keys_and(keys, args))

    def sunion(self, keys: Union[KeyT, Sequence[KeyT]], *args: KeyT) -> Any:
        return self.execute_command("SUNION", *_keys_and(keys, args))

    def sunionstore(self, dest: KeyT, keys: Union[KeyT, Sequence[KeyT]], *args: KeyT) -> Any:
        return self.execute_command("SUNIONSTORE", dest, *_keys_and(keys, args))

    def sdiff(self, keys: Union[KeyT, Sequence[KeyT]], *args: KeyT) -> Any:
        return self.execute_command("SDIFF", *_keys_and(keys, args))

    def sdiffstore(self, dest: KeyT, keys: Union[KeyT, Sequence[KeyT]], *args: KeyT) -> Any:
        return self.execute_command("SDIFFSTORE", dest, *_keys_and(keys, args))

    def sscan(self, name: KeyT, cursor: int = 0, match: Optional[Any] = None,
              count: Optional[int] = None) -> Any:
        args: List[Any] = ["SSCAN", name, cursor]
        if match is not None:
            args += ["MATCH", match]
        if count is not None:
            args += ["COUNT", count]
        return self.execute_command(*args)

    async def sscan_iter(self, name: KeyT, match: Optional[Any] = None,
                         count: Optional[int] = None) -> AsyncIterator[Any]:
        cursor = None
        while cursor != 0:
            cursor, data = await self.sscan(name, cursor or 0, match, count)
            for item in data:
                yield item

    # ---- sorted sets ----------------------------------------------------------------------

    def zadd(self, name: KeyT, mapping: Mapping[Any, float], nx: bool = False,
             xx: bool = False, ch: bool = False, incr: bool = False, gt: bool = False,
             lt: bool = False) -> Any:
        if not mapping:
            raise DataError("ZADD requires at least one element/score pair")
        if nx and xx:
            raise DataError("ZADD allows either 'nx' or 'xx', not both")
        if incr and len(mapping) != 1:
            raise DataError("ZADD option 'incr' only works when passing a single element/score pair")
        if nx and (gt or lt):
            raise DataError("Only one of 'nx', 'lt', or 'gr' may be defined.")
        args: List[Any] = ["ZADD", name]
        args += [flag for flag, on in (("NX", nx), ("XX", xx), ("GT", gt), ("LT", lt),
                                       ("CH", ch), ("INCR", incr)) if on]
        for member, score in mapping.items():
            args += [score, member]
        return self.execute_command(*args, as_score=incr)

    def zrem(self, name: KeyT, *values: Any) -> Any:
        return self.execute_command("ZREM", name, *values)

    def zscore(self, name: KeyT, value: Any) -> Any:
        return self.execute_command("ZSCORE", name, value)

    def zmscore(self, key: KeyT, members: Sequence[Any]) -> Any:
        if not members:
            raise DataError("ZMSCORE members must be a non-empty list")
        return self.execute_command("ZMSCORE", key, *members)

    def zincrby(self, name: KeyT, amount: float, value: Any) -> Any:
        return self.execute_command("ZINCRBY", name, amount, value)

    def zcard(self, name: KeyT) -> Any:
        return self.execute_command("ZCARD", name)

    def zcount(self, name: KeyT, min: Any, max: Any) -> Any:
        return self.execute_command("ZCOUNT", name, min, max)

    def zrank(self, name: KeyT, value: Any) -> Any:
        return self.execute_command("ZRANK", name, value)

    def zrevrank(self, name: KeyT, value: Any) -> Any:
        return self.execute_command("ZREVRANK", name, value)

    def zrange(self, name: KeyT, start: Any, end: Any, desc: bool = False,
               withscores: bool = False, score_cast_func: Callable[[Any], Any] = float,
               byscore: bool = False, bylex: bool = False, offset: Optional[int] = None,
               num: Optional[int] = None) -> Any:
        if byscore and bylex:
            raise DataError("``byscore`` and ``bylex`` can not be specified together.")
        if (offset is None) != (num is None):
            raise DataError("``offset`` and ``num`` must both be specified together.")
        args: List[Any] = ["ZRANGE", name, start, end]
        if byscore:
            args.append("BYSCORE")
        if bylex:
            args.append("BYLEX")
        if desc:
            args.append("REV")
        if offset is not None:
            args += ["LIMIT", offset, num]
        if withscores:
            args.append("WITHSCORES")
        return self.execute_command(*args, withscores=withscores, score_cast_func=score_cast_func)

    def zrevrange(self, name: KeyT, start: int, end: int, withscores: bool = False,
                  score_cast_func: Callable[[Any], Any] = float) -> Any:
        args: List[Any] = ["ZREVRANGE", name, start, end]
        if withscores:
            args.append("WITHSCORES")
        return self.execute_command(*args, withscores=withscores, score_cast_func=score_cast_func)

    def zrangebyscore(self, name: KeyT, min: Any, max: Any, start: Optional[int] = None,
                      num: Optional[int] = None, withscores: bool = False,
                      score_cast_func: Callable[[Any], Any] = float) -> Any:
        if (start is None) != (num is None):
            raise DataError("``start`` and ``num`` must both be specified")
        args: List[Any] = ["ZRANGEBYSCORE", name, min, max]
        if start is not None:
            args += ["LIMIT", start, num]
        if withscores:
            args.append("WITHSCORES")
        return self.execute_command(*args, withscores=withscores, score_cast_func=score_cast_func)

    def zrevrangebyscore(self, name: KeyT, max: Any, min: Any, start: Optional[int] = None,
                         num: Optional[int] = None, withscores: bool = False,
                         score_cast_func: Callable[[Any], Any] = float) -> Any:
        if (start is None) != (num is None):
            raise DataError("``start`` and ``num`` must both be specified")
        args: List[Any] = ["ZREVRANGEBYSCORE", name, max, min]
        if start is not None:
            args += ["LIMIT", start, num]
        if withscores:
            args.append("WITHSCORES")
        return self.execute_command(*args, withscores=withscores, score_cast_func=score_cast_func)

    def zremrangebyrank(self, name: KeyT, min: int, max: int) -> Any:
        return self.execute_command("ZREMRANGEBYRANK", name, min, max)

    def zremrangebyscore(self, name: KeyT, min: Any, max: Any) -> Any:
        return self.execute_command("ZREMRANGEBYSCORE", name, min, max)

    def zpopmin(self, name: KeyT, count: Optional[int] = None) -> Any:
        return self.execute_command("ZPOPMIN", name, *(() if count is None else (count,)))

    def zpopmax(self, name: KeyT, count: Optional[int] = None) -> Any:
        return self.execute_command("ZPOPMAX", name, *(() if count is None else (count,)))

    def bzpopmin(self, keys: Union[KeyT, Sequence[KeyT]], timeout: Optional[float] = 0) -> Any:
        return self.execute_command("BZPOPMIN", *_keys_and(keys, ()), timeout or 0)

    def bzpopmax(self, keys: Union[KeyT, Sequence[KeyT]], timeout: Optional[float] = 0) -> Any:
        return self.execute_command("BZPOPMAX", *_keys_and(keys, ()), timeout or 0)

    def _zstore(self, command: str, dest: KeyT, keys: Union[Sequence[KeyT], Mapping[KeyT, float]],
                aggregate: Optional[str]) -> Any:
        weights = None
        if isinstance(keys, Mapping):
            keys, weights = list(keys.keys()), list(keys.values())
        args: List[Any] = [command, dest, len(keys), *keys]
        if weights:
            args += ["WEIGHTS", *weights]
        if aggregate:
            args += ["AGGREGATE", aggregate]
        return self.execute_command(*args)

    def zunionstore(self, dest: KeyT, keys: Union[Sequence[KeyT], Mapping[KeyT, float]],
                    aggregate: Optional[str] = None) -> Any:
        return self._zstore("ZUNIONSTORE", dest, keys, aggregate)

    def zinterstore(self, dest: KeyT, keys: Union[Sequence[KeyT], Mapping[KeyT, float]],
                    aggregate: Optional[str] = None) -> Any:
        return self._zstore("ZINTERSTORE", dest, keys, aggregate)

    def zscan(self, name: KeyT, cursor: int = 0, match: Optional[Any] = None,
              count: Optional[int] = None,
              score_cast_func: Callable[[Any], Any] = float) -> Any:
        args: List[Any] = ["ZSCAN", name, cursor]
        if match is not None:
            args += ["MATCH", match]
        if count is not None:
            args += ["COUNT", count]
        return self.execute_command(*args, score_cast_func=score_cast_func)

    async def zscan_iter(self, name: KeyT, match: Optional[Any] = None,
                         count: Optional[int] = None,
                         score_cast_func: Callable[[Any], Any] = float) -> AsyncIterator[Any]:
        cursor = None
        while cursor != 0:
            cursor, data = await self.zscan(name, cursor or 0, match, count, score_cast_func)
            for item in data:
                yield item

    # ---- streams --------------------------------------------------------------------------

    def xadd(self, name: KeyT, fields: Mapping[Any, Any], id: Any = "*",
             maxlen: Optional[int] = None, approximate: bool = True, nomkstream: bool = False,
             minid: Optional[Any] = None, limit: Optional[int] = None) -> Any:
        if maxlen is not None and minid is not None:
            raise DataError("Only one of ```maxlen``` or ```minid``` may be specified")
        if not fields:
            raise DataError("XADD fields must be a non-empty dict")
        args: List[Any] = ["XADD", name]
        if nomkstream:
            args.append("NOMKSTREAM")
        if maxlen is not None:
            args += ["MAXLEN", *(("~",) if approximate else ()), maxlen]
        if minid is not None:
            args += ["MINID", *(("~",) if approximate else ()), minid]
        if limit is not None:
            args += ["LIMIT", limit]
        args.append(id)
        for pair in fields.items():
            args.extend(pair)
        return self.execute_command(*args)

    def xrange(self, name: KeyT, min: Any = "-", max: Any = "+",
               count: Optional[int] = None) -> Any:
        args: List[Any] = ["XRANGE", name, min, max]
        if count is not None:
            args += ["COUNT", count]
        return self.execute_command(*args)

    def xrevrange(self, name: KeyT, max: Any = "+", min: Any = "-",
                  count: Optional[int] = None) -> Any:
        args: List[Any] = ["XREVRANGE", name, max, min]
        if count is not None:
            args += ["COUNT", count]
        return self.execute_command(*args)

    def xread(self, streams: Mapping[KeyT, Any], count: Optional[int] = None,
              block: Optional[int] = None) -> Any:
        if not isinstance(streams, Mapping) or not streams:
            raise DataError("XREAD streams must be a non empty dict")
        args: List[Any] = ["XREAD"]
        if count is not None:
            args += ["COUNT", count]
        if block is not None:
            args += ["BLOCK", block]
        args += ["STREAMS", *streams.keys(), *streams.values()]
        return self.execute_command(*args, blocking=block is not None)

    def xreadgroup(self, groupname: Any, consumername: Any, streams: Mapping[KeyT, Any],
                   count: Optional[int] = None, block: Optional[int] = None,
                   noack: bool = False) -> Any:
        if not isinstance(streams, Mapping) or not streams:
            raise DataError("XREADGROUP streams must be a non empty dict")
        args: List[Any] = ["XREADGROUP", "GROUP", groupname, consumername]
        if count is not None:
            args += ["COUNT", count]
        if block is not None:
            args += ["BLOCK", block]
        if noack:
            args.append("NOACK")
        args += ["STREAMS", *streams.keys(), *streams.values()]
        return self.execute_command(*args, blocking=block is not None)

    def xlen(self, name: KeyT) -> Any:
        return self.execute_command("XLEN", name)

    def xdel(self, name: KeyT, *ids: Any) -> Any:
        return self.execute_command("XDEL", name, *ids)

    def xtrim(self, name: KeyT, maxlen: Optional[int] = None, approximate: bool = True,
              minid: Optional[Any] = None, limit: Optional[int] = None) -> Any:
        if (maxlen is None) == (minid is None):
            raise DataError("Only one of ``maxlen`` or ``minid`` may be specified")
        args: List[Any] = ["XTRIM", name]
        if maxlen is not None:
            args += ["MAXLEN", *(("~",) if approximate else ()), maxlen]
        else:
            args += ["MINID", *(("~",) if approximate else ()), minid]
        if limit is not None:
            args += ["LIMIT", limit]
        return self.execute_command(*args)

    def xgroup_create(self, name: KeyT, groupname: Any, id: Any = "$", mkstream: bool = False,
                      entries_read: Optional[int] = None) -> Any:
        args: List[Any] = ["XGROUP CREATE", name, groupname, id]
        if mkstream:
            args.append("MKSTREAM")
        if entries_read is not None:
            args += ["ENTRIESREAD", entries_read]
        return self.execute_command(*args)

    def xack(self, name: KeyT, groupname: Any, *ids: Any) -> Any:
        return self.execute_command("XACK", name, groupname, *ids)

    # ---- scripting ------------------------------------------------------------------------

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        return self.execute_command("EVAL", script, numkeys, *keys_and_args)

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def script_load(self, script: str) -> Any:
        return self.execute_command("SCRIPT LOAD", script)

    def script_exists(self, *args: str) -> Any:
        return self.execute_command("SCRIPT EXISTS", *args)

    def script_flush(self, sync_type: Optional[str] = None) -> Any:
        return self.execute_command("SCRIPT FLUSH", *(() if sync_type is None else (sync_type,)))

    # ---- pub/sub publishing, server, connection ------------------------------------------------

    def publish(self, channel: Any, message: Any) -> Any:
        return self.execute_command("PUBLISH", channel, message)

    def ping(self) -> Any:
        return self.execute_command("PING")

    def echo(self, value: Any) -> Any:
        return self.execute_command("ECHO", value)

    def time(self) -> Any:
        return self.execute_command("TIME")

    def dbsize(self) -> Any:
        return self.execute_command("DBSIZE")

    def flushdb(self, asynchronous: bool = False) -> Any:
        return self.execute_command("FLUSHDB", *(("ASYNC",) if asynchronous else ()))

    def flushall(self, asynchronous: bool = False) -> Any:
        return self.execute_command("FLUSHALL", *(("ASYNC",) if asynchronous else ()))

    def info(self, section: Optional[str] = None, *args: str) -> Any:
        return self.execute_command("INFO", *(() if section is None else (section, *args)))

    def config_get(self, pattern: str = "*", *args: str) -> Any:
        return self.execute_command("CONFIG GET", pattern, *args)

    def config_set(self, name: str, value: Any, *args: Any) -> Any:
        return self.execute_command("CONFIG SET", name, value, *args)

    def client_setname(self, name: str) -> Any:
        return self.execute_command("CLIENT SETNAME", name)

    def client_getname(self) -> Any:
        return self.execute_command("CLIENT GETNAME")

    def client_id(self) -> Any:
        return self.execute_command("CLIENT ID")

"""Which arguments of a command are keys, as Redis itself reports them (COMMAND INFO: the key
specifications of Redis 7, else the first/last/step of older servers), so that `key_prefix`
reaches every key argument of every keyed command without a hand-written list.  Commands whose
keys only Redis can find (key specs of type "unknown", movable keys on old servers) ask it per
call (COMMAND GETKEYS)."""
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple, Union

__all__ = ["CommandKeys", "KeyPrefixer"]

Arg = Union[bytes, str, int, float]


def _s(value: Any) -> Any:
    """A reply item as text (replies are bytes unless decode_responses)."""
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: Sequence[Any]) -> Dict[str, Any]:
    """A RESP2 flat key/value list (or a RESP3 map) as a dict with text keys."""
    if isinstance(flat, dict):
        return {_s(k): v for k, v in flat.items()}
    return {_s(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}


class _Spec:
    """One key specification: where the search for keys begins, and how keys are found."""

    __slots__ = ("begin", "begin_arg", "start_from", "find", "a", "b", "c")

    def __init__(self, spec: Dict[str, Any]) -> None:
        begin = _pairs(spec["begin_search"])
        find = _pairs(spec["find_keys"])
        self.begin = _s(begin["type"])
        bspec = _pairs(begin.get("spec") or [])
        if self.begin == "index":
            self.begin_arg, self.start_from = int(bspec["index"]), 0
        elif self.begin == "keyword":
            self.begin_arg, self.start_from = _s(bspec["keyword"]).lower(), int(bspec["startfrom"])
        else:
            self.begin_arg, self.start_from = None, 0
        self.find = _s(find["type"])
        fspec = _pairs(find.get("spec") or [])
        if self.find == "range":
            self.a, self.b, self.c = int(fspec["lastkey"]), int(fspec["keystep"]), int(fspec["limit"])
        elif self.find == "keynum":
            self.a, self.b, self.c = int(fspec["keynumidx"]), int(fspec["firstkey"]), int(fspec["keystep"])
        else:
            self.a = self.b = self.c = 0

    @property
    def known(self) -> bool:
        return self.begin in ("index", "keyword") and self.find in ("range", "keynum")

    def positions(self, argv: Sequence[Arg]) -> List[int]:
        n = len(argv)
        if self.begin == "index":
            start = self.begin_arg
        else:  # keyword: after the keyword, searched from startfrom (negative: from the end)
            if self.start_from >= 0:
                order = range(self.start_from, n)
            else:
                order = range(n + self.start_from, 0, -1)
            start = None
            for i in order:
                arg = argv[i]
                if isinstance(arg, (bytes, str)) and _s(arg).lower() == self.begin_arg:
                    start = i + 1
                    break
            if start is None:
                return []
        if start >= n:
            return []
        if self.find == "range":
            lastkey, step, limit = self.a, self.b, self.c
            if lastkey >= 0:
                last = start + lastkey
            elif limit <= 1:
                last = n + lastkey
            else:  # a fraction of what is left (limit 2: half of it)
                last = start + (n - start) // limit - 1
            return list(range(start, min(last, n - 1) + 1, max(step, 1)))
        numkeys = int(argv[start + self.a])
        first, step = start + self.b, max(self.c, 1)
        return [first + j * step for j in range(numkeys) if first + j * step < n]


class CommandKeys:
    """The key positions of one command (or subcommand, "xgroup|create"), from its COMMAND INFO
    entry."""

    __slots__ = ("specs", "legacy", "ask_redis")

    def __init__(self, info: Sequence[Any]) -> None:
        flags = {_s(f).lower() for f in (info[2] or ())}
        first, last, step = int(info[3]), int(info[4]), int(info[5])
        specs = [_Spec(_pairs(s)) for s in (info[8] if len(info) > 8 and info[8] else ())]
        self.specs = specs
        self.legacy = (first, last, step)
        #: keys only Redis can find: an unknown key spec, or movable keys on an old server
        self.ask_redis = any(not s.known for s in specs) or (not specs and "movablekeys" in flags)

    def positions(self, argv: Sequence[Arg]) -> List[int]:
        if self.specs:
            found: List[int] = []
            for spec in self.specs:
                for i in spec.positions(argv):
                    if i not in found:
                        found.append(i)
            return sorted(found)
        first, last, step = self.legacy
        if first <= 0:
            return []
        n = len(argv)
        end = n + last if last < 0 else last
        return list(range(first, min(end, n - 1) + 1, max(step, 1)))


class KeyPrefixer:
    """Prefixes the key arguments of commands (and strips it from key names Redis returns for
    KEYS, SCAN and the blocking pops), reading key positions from the server once per command.
    `query(args)` runs a command on the server (COMMAND INFO, COMMAND GETKEYS)."""

    def __init__(self, prefix: str) -> None:
        self.text = prefix
        self.raw = prefix.encode("utf-8")
        self._commands: Dict[str, Optional[Tuple[Optional[CommandKeys], Dict[str, CommandKeys]]]] = {}

    def add(self, key: Arg) -> Arg:
        """`key` with the prefix (bytes stay bytes, anything else becomes text)."""
        if isinstance(key, (bytes, bytearray, memoryview)):
            return self.raw + bytes(key)
        return self.text + (key if isinstance(key, str) else str(key))

    def strip(self, key: Any) -> Any:
        """A key name from Redis without the prefix (names without it are returned as they are)."""
        if isinstance(key, bytes) and key.startswith(self.raw):
            return key[len(self.raw):]
        if isinstance(key, str) and key.startswith(self.text):
            return key[len(self.text):]
        return key

    async def apply(self, args: Sequence[Arg],
                    query: Callable[[Sequence[Arg]], Awaitable[Any]]) -> List[Arg]:
        """`args` with every key argument prefixed."""
        name = _s(args[0]).lower() if isinstance(args[0], (bytes, str)) else str(args[0])
        if name not in self._commands:
            await self._learn(name, query)
        entry = self._commands[name]
        if entry is None:  # an unknown command: Redis will say so
            return list(args)
        keys, subcommands = entry
        if subcommands and len(args) > 1:
            keys = subcommands.get("%s|%s" % (name, _s(args[1]).lower()), keys)
        if keys is None:
            return list(args)
        if keys.ask_redis:
            return await self._by_redis(args, query)
        out = list(args)
        for i in keys.positions(args):
            out[i] = self.add(out[i])
        return out

    async def _learn(self, name: str, query: Callable[[Sequence[Arg]], Awaitable[Any]]) -> None:
        reply = await query(("COMMAND", "INFO", name))
        info = reply[0] if reply else None
        if not info:
            self._commands[name] = None
            return
        subcommands = {}
        if len(info) > 9 and info[9]:
            for sub in info[9]:
                subcommands[_s(sub[0]).lower()] = CommandKeys(sub)
        self._commands[name] = (CommandKeys(info), subcommands)

    async def _by_redis(self, args: Sequence[Arg],
                        query: Callable[[Sequence[Arg]], Awaitable[Any]]) -> List[Arg]:
        """Ask Redis which arguments are keys (in order), and prefix those."""
        keys = await query(("COMMAND", "GETKEYS", *args))
        out = list(args)
        at = 1
        for key in keys:
            raw = _s(key)
            while at < len(out) and _s(out[at]) != raw:
                at += 1
            if at < len(out):
                out[at] = self.add(out[at])
                at += 1
        return out

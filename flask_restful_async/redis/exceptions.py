"""The client's exceptions, with redis-py's names and hierarchy, so code written against
redis-py's asyncio client catches the same classes."""
from typing import Dict, Type

__all__ = ["RedisError", "ConnectionError", "TimeoutError", "AuthenticationError",
           "AuthenticationWrongNumberOfArgsError", "AuthorizationError", "BusyLoadingError",
           "InvalidResponse", "ResponseError", "DataError", "PubSubError", "WatchError",
           "NoScriptError", "OutOfMemoryError", "ExecAbortError", "ReadOnlyError",
           "NoPermissionError", "ModuleError", "LockError", "ClusterError", "error_from_reply"]


class RedisError(Exception):
    """Any error of the client."""


class ConnectionError(RedisError):
    """The connection could not be made, or was lost (commands in flight fail with it)."""


class TimeoutError(RedisError):
    """A command, or connecting, took longer than socket_timeout / socket_connect_timeout."""


class AuthenticationError(ConnectionError):
    pass


class AuthorizationError(ConnectionError):
    pass


class BusyLoadingError(ConnectionError):
    pass


class InvalidResponse(RedisError):
    pass


class ResponseError(RedisError):
    """An error reply from Redis."""


class DataError(RedisError):
    """A value the client cannot send (wrong type, missing argument)."""


class PubSubError(RedisError):
    pass


class WatchError(RedisError):
    """A watched key changed before EXEC: the transaction was not run."""


class NoScriptError(ResponseError):
    pass


class OutOfMemoryError(ResponseError):
    pass


class ExecAbortError(ResponseError):
    pass


class ReadOnlyError(ResponseError):
    pass


class NoPermissionError(ResponseError):
    pass


class ModuleError(ResponseError):
    pass


class AuthenticationWrongNumberOfArgsError(ResponseError):
    pass


class LockError(RedisError, ValueError):
    pass


class ClusterError(RedisError):
    pass


# error reply prefix -> class (the prefix is the reply's first word, as redis-py reads it)
_BY_PREFIX: Dict[str, Type[RedisError]] = {
    "ERR": ResponseError,
    "EXECABORT": ExecAbortError,
    "LOADING": BusyLoadingError,
    "NOSCRIPT": NoScriptError,
    "READONLY": ReadOnlyError,
    "NOAUTH": AuthenticationError,
    "NOPERM": NoPermissionError,
    "OOM": OutOfMemoryError,
    "WRONGPASS": AuthenticationError,
}
_BY_MESSAGE = {
    "max number of clients reached": ConnectionError,
    "Client sent AUTH, but no password is set": AuthenticationError,
    "invalid password": AuthenticationError,
    "wrong number of arguments for 'auth' command": AuthenticationWrongNumberOfArgsError,
    "wrong number of arguments for 'AUTH' command": AuthenticationWrongNumberOfArgsError,
    "Error loading the extension. Please check the server logs.": ModuleError,
}


def error_from_reply(text: str) -> RedisError:
    """The exception for an error reply's text ("ERR unknown command ..." -> ResponseError);
    the message keeps what follows a recognised prefix, as redis-py's does."""
    prefix, _, rest = text.partition(" ")
    cls = _BY_PREFIX.get(prefix)
    if cls is None:
        return ResponseError(text)
    if cls is ResponseError:
        return _BY_MESSAGE.get(rest, ResponseError)(rest)
    return cls(rest)

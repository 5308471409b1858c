"""Redis URLs, as redis-py reads them: redis://[[user]:password@]host[:port][/db][?option=...],
rediss:// (TLS), unix://[[user]:password@]/path[?db=N]."""
from typing import Any, Callable, Dict
from urllib.parse import parse_qs, unquote, urlparse

__all__ = ["parse_url"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(value: str) -> bool:
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("expected one of " + ", ".join(_TRUE + _FALSE))


# query options and how each is read
_OPTIONS: Dict[str, Callable[[str], Any]] = {
    "db": int, "socket_timeout": float, "socket_connect_timeout": float,
    "health_check_interval": float, "max_connections": int, "protocol": int,
    "decode_responses": _bool, "retry_on_timeout": _bool, "client_name": str,
    "client_cache": int, "key_prefix": str, "encoding": str, "encoding_errors": str,
    "ssl_cert_reqs": str, "ssl_ca_certs": str, "ssl_certfile": str, "ssl_keyfile": str,
    "ssl_check_hostname": _bool,
}


def parse_url(url: str) -> Dict[str, Any]:
    """The Redis() keyword arguments a URL stands for.  ValueError naming what is wrong."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("Redis URL %r: the scheme must be redis://, rediss:// or unix://" % url)
    kwargs: Dict[str, Any] = {}
    for name, values in parse_qs(parsed.query).items():
        read = _OPTIONS.get(name)
        if read is None:
            raise ValueError("Redis URL %r: unknown option %r (known: %s)"
                             % (url, name, ", ".join(sorted(_OPTIONS))))
        try:
            kwargs[name] = read(values[-1])
        except ValueError as exc:
            raise ValueError("Redis URL %r: option %s: %s" % (url, name, exc)) from None
    if parsed.username:
        kwargs["username"] = unquote(parsed.username)
    if parsed.password:
        kwargs["password"] = unquote(parsed.password)
    if parsed.scheme == "unix":
        if not parsed.path:
            raise ValueError("Redis URL %r: unix:// needs a socket path" % url)
        kwargs["unix_socket_path"] = unquote(parsed.path)
        return kwargs
    if parsed.hostname:
        kwargs["host"] = unquote(parsed.hostname)
    try:
        port = parsed.port
    except ValueError:
        raise ValueError("Redis URL %r: the port must be an integer from 0 to 65535" % url) from None
    if port:
        kwargs["port"] = port
    path = parsed.path.strip("/")
    if path and "db" not in kwargs:
        try:
            kwargs["db"] = int(path)
        except ValueError:
            raise ValueError("Redis URL %r: the path must be a database number" % url) from None
    if parsed.scheme == "rediss":
        kwargs["ssl"] = True
    return kwargs

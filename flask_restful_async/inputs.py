"""Argument types for reqparse: each takes the raw value and returns it converted, or raises
ValueError with a message fit for the client."""
import re
from datetime import datetime, time, timedelta, timezone
from email.utils import mktime_tz, parsedate_tz
from typing import Any, Tuple, Union

from flask_restful_async import iso8601

__all__ = ["url", "regex", "iso8601interval", "date", "natural", "positive", "int_range",
           "boolean", "datetime_from_rfc822", "datetime_from_iso8601"]

START_OF_DAY = time(0, 0, 0, tzinfo=timezone.utc)
END_OF_DAY = time(23, 59, 59, 999999, tzinfo=timezone.utc)

_HOSTNAME = r"(?:[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?\.)+(?:[A-Z]{2,6}\.?|[A-Z0-9-]{2,}\.?)"
_IPV4 = r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"
_IPV6 = r"\[?[A-F0-9]*:[A-F0-9:]+\]?"
url_regex = re.compile(
    r"^(?:http|ftp)s?://"                      # scheme
    r"(?:[^:@]+?:[^:@]*?@|)"                   # optional user:password@
    r"(?:" + "|".join((_HOSTNAME, "localhost", _IPV4, _IPV6)) + r")"
    r"(?::\d+)?"                               # port
    r"(?:/?|[/?]\S+)$",                        # path and query
    re.IGNORECASE)


def url(value: str) -> str:
    """An http(s) or ftp(s) URL; the error suggests "http://" when that would fix it."""
    if url_regex.search(value):
        return value
    message = "{0} is not a valid URL".format(value)
    if url_regex.search("http://" + value):
        message += ". Did you mean: http://{0}".format(value)
    raise ValueError(message)


class regex:
    """A string matching `pattern` (compiled once, here, so a bad pattern fails early)."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.flags = flags
        self.re = re.compile(pattern, flags)

    def __call__(self, value: str) -> str:
        if not self.re.search(value):
            raise ValueError('Value does not match pattern: "{0}"'.format(self.pattern))
        return value

    def __deepcopy__(self, memo: dict) -> "regex":
        return regex(self.pattern, self.flags)


def _normalize_interval(start: Any, end: Any, value: Any = None) -> Tuple[datetime, datetime]:
    """Both ends as UTC datetimes; dates become midnight, naive times are taken as UTC."""
    if not isinstance(start, datetime):
        start = datetime.combine(start, START_OF_DAY)
        end = datetime.combine(end, START_OF_DAY)
    if start.tzinfo is None:
        return start.replace(tzinfo=timezone.utc), end.replace(tzinfo=timezone.utc)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def _expand_datetime(start: Any, value: str) -> Any:
    """The end of the span a single date or date-time names: its day, or one unit of the
    finest time element written (hour, minute or second)."""
    if not isinstance(start, datetime):
        return start + timedelta(days=1)
    clock = re.sub(r"[+-].+|Z$", "", value.split("T")[1])
    return start + {0: timedelta(hours=1), 1: timedelta(minutes=1)}.get(
        clock.count(":"), timedelta(seconds=1))


def _parse_interval(value: str) -> Tuple[Any, Any]:
    """(start, end) of an interval, or (point, None) for a single date or date-time."""
    if "/" in value:
        return tuple(sorted(iso8601.parse_interval(value)))
    if "T" in value:
        return iso8601.parse_datetime(value), None
    return iso8601.parse_date(value), None


def iso8601interval(value: str, argument: str = "argument") -> Tuple[datetime, datetime]:
    """An ISO 8601 interval (start/end, start/duration) or a single date or date-time,
    as a (start, end) pair of UTC datetimes, end exclusive.

    A single value spans its resolution: "2013-01-01" is that day, "2013-01-01T12" that hour,
    "2013-01-01T12:30" that minute.  Naive values are taken as UTC.
    """
    try:
        start, end = _parse_interval(value)
        if end is None:
            end = _expand_datetime(start, value)
        start, end = _normalize_interval(start, end, value)
    except ValueError:
        raise ValueError("Invalid {arg}: {value}. {arg} must be a valid ISO8601 date/time "
                         "interval.".format(arg=argument, value=value)) from None
    return start, end


def date(value: str) -> datetime:
    """A YYYY-mm-dd date (as a datetime at midnight)."""
    return datetime.strptime(value, "%Y-%m-%d")


def _get_integer(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError("{0} is not a valid integer".format(value)) from None


def natural(value: Any, argument: str = "argument") -> int:
    """An integer >= 0."""
    number = _get_integer(value)
    if number < 0:
        raise ValueError("Invalid {arg}: {value}. {arg} must be a non-negative integer"
                         .format(arg=argument, value=number))
    return number


def positive(value: Any, argument: str = "argument") -> int:
    """An integer >= 1."""
    number = _get_integer(value)
    if number < 1:
        raise ValueError("Invalid {arg}: {value}. {arg} must be a positive integer"
                         .format(arg=argument, value=number))
    return number


class int_range:
    """An integer within [low, high]."""

    def __init__(self, low: int, high: int, argument: str = "argument") -> None:
        self.low = low
        self.high = high
        self.argument = argument

    def __call__(self, value: Any) -> int:
        number = _get_integer(value)
        if not self.low <= number <= self.high:
            raise ValueError("Invalid {arg}: {val}. {arg} must be within the range {lo} - {hi}"
                             .format(arg=self.argument, val=number, lo=self.low, hi=self.high))
        return number


def boolean(value: Union[str, bool]) -> bool:
    """"true"/"1" or "false"/"0" (any case); a JSON boolean passes through."""
    if isinstance(value, bool):
        return value
    if not value:
        raise ValueError("boolean type must be non-null")
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError("Invalid literal for boolean(): {0}".format(lowered))


def datetime_from_rfc822(datetime_str: str) -> datetime:
    """An RFC 822 date ("Wed, 02 Oct 2002 08:00:00 EST") as a UTC datetime."""
    return datetime.fromtimestamp(mktime_tz(parsedate_tz(datetime_str)), timezone.utc)


def datetime_from_iso8601(datetime_str: str) -> datetime:
    """An ISO 8601 date-time ("2012-01-01T23:30:00+02:00"); a date alone means midnight."""
    if "T" not in datetime_str:
        return datetime.combine(iso8601.parse_date(datetime_str), time())
    return iso8601.parse_datetime(datetime_str)


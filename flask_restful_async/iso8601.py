"""A small ISO 8601 reader: calendar dates, date-times, durations and intervals.

Covers what request arguments use in practice: extended and basic formats, hour / minute /
second resolution with decimal fractions, `Z` and numeric offsets.  Durations count a year
as 365 days and a month as 30 days (the interval is a length, not a calendar step).
Everything invalid raises ValueError.
"""
import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Optional, Tuple, Union

__all__ = ["parse_date", "parse_datetime", "parse_duration", "parse_interval"]

DateOrDatetime = Union[date, datetime]

_DATE = re.compile(r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2}))?|(?P<bm>\d{2})(?P<bd>\d{2}))\Z")
_TIME = re.compile(
    r"(?P<h>\d{2})(?:(?P<sep>:?)(?P<mi>\d{2})(?:(?P=sep)(?P<s>\d{2}))?)?"
    r"(?:[.,](?P<frac>\d+))?"
    r"(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?\Z")
_DURATION = re.compile(
    r"P(?!\Z)(?:(?P<Y>\d+(?:[.,]\d+)?)Y)?(?:(?P<M>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<W>\d+(?:[.,]\d+)?)W)?(?:(?P<D>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+(?:[.,]\d+)?)H)?(?:(?P<mi>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<s>\d+(?:[.,]\d+)?)S)?)?\Z")
_DAYS_PER = {"Y": 365, "M": 30, "W": 7, "D": 1}
_SECONDS_PER = {"h": 3600, "mi": 60, "s": 1}


def parse_date(text: str) -> date:
    """YYYY-MM-DD, YYYYMMDD or YYYY-MM (the first of the month)."""
    m = _DATE.match(text)
    if not m:
        raise ValueError("not an ISO 8601 date: %r" % text)
    month = m.group("m") or m.group("bm")
    day = m.group("d") or m.group("bd") or "01"
    return date(int(m.group("y")), int(month), int(day))


def _parse_offset(text: Optional[str]) -> Optional[timezone]:
    if text is None:
        return None
    if text == "Z":
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError("bad UTC offset: %r" % text)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_datetime(text: str) -> datetime:
    """<date>T<time>[offset]; naive when no offset is given.  A fraction applies to the
    last time element given (hours, minutes or seconds)."""
    day_part, sep, time_part = text.partition("T")
    if not sep:
        raise ValueError("not an ISO 8601 date-time: %r" % text)
    day = parse_date(day_part)
    m = _TIME.match(time_part)
    if not m:
        raise ValueError("not an ISO 8601 time: %r" % time_part)
    hour = int(m.group("h"))
    minute = int(m.group("mi") or 0)
    second = int(m.group("s") or 0)
    extra = timedelta()
    if m.group("frac"):
        fraction = float("0." + m.group("frac"))
        unit = "s" if m.group("s") else "mi" if m.group("mi") else "h"
        extra = timedelta(seconds=fraction * _SECONDS_PER[unit])
    value = datetime.combine(day, time(hour, minute, second), tzinfo=_parse_offset(m.group("tz")))
    return value + extra


def parse_duration(text: str) -> timedelta:
    """PnYnMnWnDTnHnMnS (any part optional, decimals allowed) as a timedelta."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError("not an ISO 8601 duration: %r" % text)
    days = seconds = 0.0
    for name, value in m.groupdict().items():
        if value is None:
            continue
        number = float(value.replace(",", "."))
        if name in _DAYS_PER:
            days += number * _DAYS_PER[name]
        else:
            seconds += number * _SECONDS_PER[name]
    return timedelta(days=days, seconds=seconds)


def _parse_point(text: str) -> DateOrDatetime:
    return parse_datetime(text) if "T" in text else parse_date(text)


def _shift(start: DateOrDatetime, length: timedelta) -> DateOrDatetime:
    if not isinstance(start, datetime) and length % timedelta(days=1):
        start = datetime.combine(start, time())
    return start + length


def parse_interval(text: str) -> Tuple[DateOrDatetime, DateOrDatetime]:
    """start/end, start/duration or duration/end; the two ends in that order."""
    first, sep, second = text.partition("/")
    if not sep or not first or not second:
        raise ValueError("not an ISO 8601 interval: %r" % text)
    if first.startswith("P"):
        end = _parse_point(second)
        return _shift(end, -parse_duration(first)), end
    start = _parse_point(first)
    if second.startswith("P"):
        return start, _shift(start, parse_duration(second))
    end = _parse_point(second)
    if isinstance(start, datetime) != isinstance(end, datetime):
        start, end = (v if isinstance(v, datetime) else datetime.combine(v, time())
                      for v in (start, end))
    return start, end

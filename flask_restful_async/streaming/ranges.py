"""Which part of a file a request asks for, and whether it needs the body at all: Range and
If-Range (RFC 9110 14), If-None-Match and If-Modified-Since (RFC 9110 13).  Pure functions of
the request's header values and the file's size, ETag and modification time; the file
response (files.py) acts on what they decide."""
import re
from typing import List, Optional, Tuple

from werkzeug.http import parse_date

__all__ = ["MAX_RANGES", "RangeDecision", "decide_ranges", "not_modified", "etag_matches"]

#: more ranges than this in one request are refused (416): each costs a part header and a
#: separate read, and a long list of tiny or overlapping ranges is a known amplification
MAX_RANGES = 100

_RANGE_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")


class RangeDecision:
    """What to send: `status` 200 (the whole file), 206 (`ranges`: inclusive (first, last)
    byte positions, in the order asked) or 416 (none can be satisfied)."""

    __slots__ = ("status", "ranges")

    def __init__(self, status: int, ranges: Optional[List[Tuple[int, int]]] = None) -> None:
        self.status = status
        self.ranges = ranges or []

    def __repr__(self) -> str:
        return "RangeDecision(%d, %r)" % (self.status, self.ranges)


_WHOLE = RangeDecision(200)
_UNSATISFIABLE = RangeDecision(416)


def _split_etags(header: str) -> List[Tuple[bool, str]]:
    """An If-None-Match / If-Range list as (weak, opaque tag) pairs; "*" as (False, "*")."""
    tags = []
    for item in re.findall(r'\s*(W/)?("[^"]*"|\*)\s*,?', header):
        weak, tag = item
        tags.append((bool(weak), tag))
    return tags


def etag_matches(header: str, etag: str, *, weak: bool) -> bool:
    """Does the header's list match our (quoted) `etag`?  Weak comparison for If-None-Match
    (RFC 9110 8.8.3.2: the W/ prefixes are ignored), strong for If-Range."""
    ours_weak = etag.startswith("W/")
    ours = etag[2:] if ours_weak else etag
    for their_weak, tag in _split_etags(header):
        if tag == "*":
            return True
        if tag != ours:
            continue
        if weak or not (their_weak or ours_weak):
            return True
    return False


def not_modified(method: str, if_none_match: Optional[str], if_modified_since: Optional[str],
                 etag: Optional[str], last_modified: Optional[int]) -> bool:
    """304 instead of the body (GET and HEAD only; If-Modified-Since only when there is no
    If-None-Match, RFC 9110 13.1.3)."""
    if method not in ("GET", "HEAD"):
        return False
    if if_none_match is not None:
        return etag is not None and etag_matches(if_none_match, etag, weak=True)
    if if_modified_since is not None and last_modified is not None:
        since = parse_date(if_modified_since)
        return since is not None and int(since.timestamp()) >= last_modified
    return False


def _if_range_holds(if_range: str, etag: Optional[str], last_modified: Optional[int]) -> bool:
    """If-Range: the range applies only while the representation is the one the client has
    (RFC 9110 13.1.5: a strong ETag match, or exactly the Last-Modified date)."""
    value = if_range.strip()
    if value.startswith(('"', 'W/"')):
        return etag is not None and not value.startswith("W/") and etag_matches(
            value, etag, weak=False)
    date = parse_date(value)
    return date is not None and last_modified is not None and int(date.timestamp()) == last_modified


def decide_ranges(method: str, range_header: Optional[str], if_range: Optional[str],
                  size: int, etag: Optional[str], last_modified: Optional[int]) -> RangeDecision:
    """What a GET (or HEAD) with these headers gets of a `size`-byte file.

    - No Range, not GET/HEAD, a unit other than bytes, a Range header that does not parse, or
      an If-Range that no longer holds: the whole file (200).  (RFC 9110 14.2: a server may
      ignore Range; a malformed one is ignored.)
    - An inverted range (`bytes=5-3`), none that overlaps the file, or more than MAX_RANGES:
      416, with `Content-Range: bytes */size` (RFC 9110 15.5.17).
    - Otherwise 206 with each satisfiable range clipped to the file (`bytes=-500`: the last
      500 bytes; `bytes=100-`: from 100 to the end).
    """
    if range_header is None or method not in ("GET", "HEAD"):
        return _WHOLE
    unit, sep, specs = range_header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return _WHOLE
    if if_range is not None and not _if_range_holds(if_range, etag, last_modified):
        return _WHOLE
    items = specs.split(",")
    if len(items) > MAX_RANGES:
        return _UNSATISFIABLE
    ranges: List[Tuple[int, int]] = []
    inverted = False
    specs_seen = 0
    for item in items:
        if not item.strip():
            continue  # (RFC 9110 5.6.1: empty list elements are allowed)
        specs_seen += 1
        m = _RANGE_SPEC.fullmatch(item)
        if m is None:
            return _WHOLE
        first, last = m.group(1), m.group(2)
        if not first and not last:
            return _WHOLE
        if not first:  # a suffix: the last N bytes
            n = int(last)
            if n == 0 or size == 0:
                continue
            ranges.append((max(0, size - n), size - 1))
            continue
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            inverted = True
            continue
        if start >= size:
            continue
        ranges.append((start, min(end, size - 1)))
    if not specs_seen:
        return _WHOLE  # "bytes=": nothing asked, nothing to refuse
    if inverted or not ranges:
        return _UNSATISFIABLE
    return RangeDecision(206, ranges)

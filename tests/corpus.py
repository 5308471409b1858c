"""Decoder for the shared HTTP/1.1 request corpus (../shared/corpus/http/).

File format (from the corpus README): real newlines are only line wrapping and are deleted;
the two-character escapes \\r \\n \\0 \\t become CR, LF, NUL and TAB.  A few files also use
\\xHH for one byte (BEL, DEL, a bare CR, UTF-8 obs-text); those are decoded too, since the
file names say which byte they mean (e.g. rfc9110_field_value_ctl_bel_01 holds \\x07).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_BESIDE_REPO = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "http"
CORPUS_DIR = Path(os.environ.get("FRA_CORPUS_DIR") or
                  (_BESIDE_REPO if _BESIDE_REPO.is_dir() else "/work/shared/corpus/http"))

_ESCAPE = re.compile(rb"\\(?:x([0-9A-Fa-f]{2})|([rn0t]))")
_SIMPLE = {b"r": b"\r", b"n": b"\n", b"0": b"\0", b"t": b"\t"}


def decode(text: bytes) -> bytes:
    """Turn the text of one .http file into the bytes sent on the wire."""
    text = text.replace(b"\n", b"")

    def repl(m: re.Match) -> bytes:
        if m.group(1) is not None:
            return bytes([int(m.group(1), 16)])
        return _SIMPLE[m.group(2)]

    return _ESCAPE.sub(repl, text)


@dataclass(frozen=True)
class Case:
    name: str
    kind: str             # "valid" or "invalid"
    error: str = ""       # gunicorn's error class, invalid cases only
    category: str = ""    # "syntax" or "limit", invalid cases only

    @property
    def path(self) -> Path:
        return CORPUS_DIR / self.kind / f"{self.name}.http"

    @property
    def data(self) -> bytes:
        return decode(self.path.read_bytes())


def invalid_cases() -> list[Case]:
    out = []
    for line in (CORPUS_DIR / "invalid.tsv").read_text().splitlines():
        if not line.strip():
            continue
        cols = line.split("\t")
        out.append(Case(cols[0], "invalid", cols[1], cols[2] if len(cols) > 2 else "syntax"))
    return out


def valid_cases() -> list[Case]:
    return [Case(line.strip(), "valid")
            for line in (CORPUS_DIR / "valid.tsv").read_text().splitlines() if line.strip()]

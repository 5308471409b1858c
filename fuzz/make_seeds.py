#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into OUTDIR/<target>/ from the shared HTTP
request corpus (CORPUS_DIR/{valid,invalid}/*.http).  Run by `make seeds`; the output is a build
product, never committed.

Corpus file format (its README): real newlines are only wrapping and are deleted; the escapes
\\r \\n \\0 \\t become CR LF NUL TAB.  Some files also write one byte as \\xHH (BEL, DEL, a bare
CR, obs-text), decoded here too.
"""
import hashlib
import re
import struct
import sys
from pathlib import Path

_ESC = re.compile(rb"\\(?:x([0-9A-Fa-f]{2})|([rn0t]))")
_SIMPLE = {b"r": b"\r", b"n": b"\n", b"0": b"\0", b"t": b"\t"}

# fuzz_common.h: flags, request_line, header_size, header_count, body_size, 3 seed bytes
SMALL, BODY, BYTEWISE = 1, 2, 4
CONFIGS = [
    bytes([0, 0, 0, 0, 0, 1, 0, 0]),                      # server defaults, split seed 1
    bytes([SMALL | BODY, 60, 40, 4, 2, 7, 0, 0]),         # request line 72, headers 168/5, body 32
    bytes([SMALL | BODY | BYTEWISE, 255, 255, 31, 255, 3, 9, 0]),
]


def decode(text: bytes) -> bytes:
    text = text.replace(b"\n", b"")
    return _ESC.sub(lambda m: bytes([int(m.group(1), 16)]) if m.group(1) else _SIMPLE[m.group(2)], text)


def write(outdir: Path, data: bytes) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main() -> int:
    corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
    valid = [decode(p.read_bytes()) for p in sorted((corpus / "valid").glob("*.http"))]
    invalid = [decode(p.read_bytes()) for p in sorted((corpus / "invalid").glob("*.http"))]
    if not valid or not invalid:
        print(f"make_seeds: no .http files under {corpus}", file=sys.stderr)
        return 1
    handmade = [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    ]
    reqs = valid + invalid + handmade
    pipelines = [a + b for a in valid[:6] for b in valid[6:] + invalid[::5]]
    for cfg in CONFIGS:
        for data in reqs + pipelines:
            write(out / "fuzz_parser", cfg + data)

    # chunked bodies: what follows the head of every corpus request that declares chunked
    bodies = [b"5\r\nhello\r\n0\r\n\r\n", b"1;a=\"q\\\"x\";b\r\nx\r\n0\r\nT: v\r\n\r\n",
              b"A\r\n0123456789\r\n00\r\n\r\nGET / HTTP/1.1\r\n", b"0\r\n\r\n"]
    for data in valid + invalid:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep and b"chunked" in head.lower():
            bodies.append(body)
    for cfg in CONFIGS:
        for body in bodies:
            write(out / "fuzz_chunked", cfg + body)

    for size, status, hdr in [(0, 200, b"Content-Type:text/plain"), (0x1f, 404, b"X-A:b\r\nc"),
                              (2**64 - 1, 599, b"bad name:v"), (4096, -1, b":"),
                              (255, 431, b"Set-Cookie:a=\x00b"), (1 << 40, 1000, b"x")]:
        write(out / "fuzz_response", struct.pack("<Qi", size, status) + hdr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

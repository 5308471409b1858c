#!/usr/bin/env bash
# Fetches hiredis' C sources (the hiredis 1.x copy inside the PyPI `hiredis` sdist, in its
# vendor/hiredis/) into build/hiredis/, where setup.py compiles them into the extension.
# Debian's libhiredis-dev is 0.14 (no RESP3).  Reused while present; never committed.
# Usage: scripts/fetch-hiredis.sh [PYTHON]   (a Python with pip; the Makefile passes the venv's)
set -euo pipefail
cd "$(dirname "$0")/.."
HIREDIS_SDIST_VERSION=3.5.0          # the one place the version is pinned
dest=build/hiredis
src="$dest/hiredis-$HIREDIS_SDIST_VERSION/vendor/hiredis"
[ -f "$src/async.c" ] && exit 0
py="${1:-python3}"
mkdir -p "$dest"
echo "fetching hiredis C sources (PyPI sdist hiredis==$HIREDIS_SDIST_VERSION) into $dest"
"$py" -m pip download --disable-pip-version-check -q --no-binary :all: --no-deps \
  "hiredis==$HIREDIS_SDIST_VERSION" -d "$dest"
tar -xzf "$dest/hiredis-$HIREDIS_SDIST_VERSION.tar.gz" -C "$dest" \
  "hiredis-$HIREDIS_SDIST_VERSION/vendor/hiredis"
rm -f "$dest/hiredis-$HIREDIS_SDIST_VERSION.tar.gz"
[ -f "$src/async.c" ] || { echo "error: $src/async.c missing after unpacking" >&2; exit 1; }
ln -sfn "hiredis-$HIREDIS_SDIST_VERSION/vendor/hiredis" "$dest/src"

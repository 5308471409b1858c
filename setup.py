"""Builds flask_restful_async._core from csrc/ against system libuv, llhttp and hiredis.

Environment variables (all optional):
  FRA_LLHTTP_SRC      folder holding llhttp.c, api.c, http.c   (default /usr/share/llhttp)
  FRA_LLHTTP_INCLUDE  folder holding llhttp.h                  (default /usr/share/include/llhttp)
  FRA_LIBUV_CFLAGS / FRA_LIBUV_LIBS   flags for another libuv  (default: pkg-config libuv)
  FRA_HIREDIS_SRC     folder holding hiredis 1.x's C sources    (default build/hiredis/src, put
                      there by scripts/fetch-hiredis.sh from the PyPI hiredis sdist)
  FRA_HIREDIS_SYSTEM=1  link a system hiredis >= 1.0 found by pkg-config instead
  FRA_REDIS_TLS=0     leave out rediss:// (default: in when OpenSSL's headers are there)
  FRA_SANITIZE=1      build with AddressSanitizer + UndefinedBehaviorSanitizer
  FRA_DEBUG=1         -O0 -g
Both debug builds compile in fault injection (FRA_FAULTS, see csrc/include/fra/core.h).
"""
import glob
import os
import shlex
import subprocess
import sys

from setuptools import Extension, setup


def fail(msg: str) -> None:
    sys.stderr.write(f"error: {msg}\n")
    sys.exit(1)


def libuv_flags():
    cflags = os.environ.get("FRA_LIBUV_CFLAGS")
    libs = os.environ.get("FRA_LIBUV_LIBS")
    if cflags is not None or libs is not None:
        return shlex.split(cflags or ""), shlex.split(libs or "-luv")
    try:
        out = subprocess.run(["pkg-config", "--cflags", "--libs", "libuv"],
                             capture_output=True, text=True)
    except FileNotFoundError:
        fail("pkg-config not found: install the Debian package pkg-config")
    if out.returncode != 0:
        fail("libuv not found by pkg-config: install the Debian package libuv1-dev "
             "(or set FRA_LIBUV_CFLAGS/FRA_LIBUV_LIBS)")
    flags = shlex.split(out.stdout)
    return [f for f in flags if not f.startswith("-l")], [f for f in flags if f.startswith("-l")]


llhttp_src = os.environ.get("FRA_LLHTTP_SRC", "/usr/share/llhttp")
llhttp_inc = os.environ.get("FRA_LLHTTP_INCLUDE", "/usr/share/include/llhttp")
llhttp_files = [os.path.join(llhttp_src, f) for f in ("llhttp.c", "api.c", "http.c")]
if not all(os.path.exists(f) for f in llhttp_files):
    fail(f"llhttp sources not found in {llhttp_src}: install the Debian package node-llhttp "
         "(or set FRA_LLHTTP_SRC)")
if not os.path.exists(os.path.join(llhttp_inc, "llhttp.h")):
    fail(f"llhttp.h not found in {llhttp_inc}: install the Debian package node-llhttp "
         "(or set FRA_LLHTTP_INCLUDE)")

def hiredis_flags():
    """Compile flags, link flags and whether TLS is in, for hiredis: the vendored sources
    (compiled through csrc/redis/hiredis_*.c, their folder an -isystem path so their own
    warnings stay out of our -Wall build) or a system copy."""
    want_tls = os.environ.get("FRA_REDIS_TLS", "1") != "0"
    if os.environ.get("FRA_HIREDIS_SYSTEM"):
        def pc(*args):
            out = subprocess.run(["pkg-config", *args], capture_output=True, text=True)
            return out.returncode == 0, out.stdout.strip()
        ok, _ = pc("--atleast-version=1.0", "hiredis")
        if not ok:
            fail("FRA_HIREDIS_SYSTEM=1: pkg-config finds no hiredis >= 1.0 (Debian's "
                 "libhiredis-dev is 0.14; unset FRA_HIREDIS_SYSTEM to build the vendored copy)")
        _, inc = pc("--variable=includedir", "hiredis")
        _, libs = pc("--libs", "hiredis")
        tls = want_tls and pc("--exists", "hiredis_ssl")[0]
        if tls:
            libs += " " + pc("--libs", "hiredis_ssl")[1]
        cflags = ["-isystem", os.path.join(inc, "hiredis"), "-DFRA_HIREDIS_SYSTEM"]
        return cflags + (["-DFRA_REDIS_TLS"] if tls else []), shlex.split(libs), tls
    src = os.environ.get("FRA_HIREDIS_SRC", "build/hiredis/src")
    if not os.path.exists(os.path.join(src, "async.c")):
        fail(f"hiredis sources not found in {src}: run scripts/fetch-hiredis.sh "
             "(make build does), or set FRA_HIREDIS_SRC")
    tls = want_tls and os.path.exists("/usr/include/openssl/ssl.h")
    cflags = ["-isystem", os.path.abspath(src)] + (["-DFRA_REDIS_TLS"] if tls else [])
    return cflags, (["-lssl", "-lcrypto"] if tls else []), tls


uv_cflags, uv_libs = libuv_flags()
hiredis_cflags, hiredis_libs, _ = hiredis_flags()
# llhttp's sources are compiled through csrc/http/llhttp_*.c (setuptools refuses absolute
# source paths in wheels); their folder is on the include path.
sources = sorted(glob.glob("csrc/core/*.c") + glob.glob("csrc/http/*.c") + glob.glob("csrc/py/*.c")
                 + glob.glob("csrc/redis/*.c") + glob.glob("csrc/stream/*.c"))
depends = glob.glob("csrc/include/fra/*.h") + glob.glob("csrc/**/*_internal.h", recursive=True)

cflags = ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
          "-Wno-missing-field-initializers", "-fvisibility=hidden"] + uv_cflags + hiredis_cflags
ldflags = []
if os.environ.get("FRA_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
           "-fno-omit-frame-pointer", "-O1", "-g"]
    cflags += san + ["-DFRA_FAULT_INJECTION"]
    ldflags += ["-fsanitize=address,undefined"]
elif os.environ.get("FRA_DEBUG"):
    cflags += ["-O0", "-g", "-DFRA_FAULT_INJECTION"]
else:
    cflags += ["-O2", "-g"]

setup(
    ext_modules=[
        Extension(
            "flask_restful_async._core",
            sources=sources,
            include_dirs=["csrc/include", llhttp_inc, llhttp_src],
            depends=depends,
            extra_compile_args=cflags,
            extra_link_args=ldflags + uv_libs + hiredis_libs,
        )
    ]
)

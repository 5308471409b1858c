# The two commands a fresh Debian machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
SYSPKGS     := build-essential pkg-config libuv1-dev node-llhttp libssl-dev
# The tests and the bench start their own redis-server on a free port (never the machine's
# 6379); redis-tools brings redis-cli and redis-benchmark, openssl makes the TLS test certificate.
REDISPKGS   := redis-server redis-tools openssl
# Chromium and its WebDriver: the EventSource test in a real browser (tests/browser.py).
BROWSERPKGS := chromium chromium-driver
TESTSYSPKGS := $(SYSPKGS) $(REDISPKGS) $(BROWSERPKGS) curl
SMOKEPKGS   := $(SYSPKGS) wrk util-linux valgrind curl
BENCHPKGS   := $(SMOKEPKGS) $(REDISPKGS)
FUZZPKGS    := clang libclang-rt-14-dev
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
HOST ?= 127.0.0.1
PORT ?= 8000
TESTS ?= tests
CSRC := $(shell find csrc -name '*.[ch]' 2>/dev/null) setup.py

.PHONY: run test test-asan test-c fuzz leakcheck bench bench-smoke build deps clean

deps:
	@scripts/system-deps.sh $(SYSPKGS)

$(VENV)/.stamp-venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install 'setuptools>=64' wheel
	touch $@

$(VENV)/.stamp-test: requirements/test.txt $(VENV)/.stamp-venv
	$(PIP) install -r requirements/test.txt
	touch $@

$(VENV)/.stamp-bench: requirements/bench.txt $(VENV)/.stamp-venv
	$(PIP) install -r requirements/bench.txt
	touch $@

# hiredis' C sources from the PyPI sdist (scripts/fetch-hiredis.sh pins the version).
HIREDIS := build/hiredis/src/async.c
$(HIREDIS): | $(VENV)/.stamp-venv
	@scripts/fetch-hiredis.sh $(PY)

# Editable install: the extension is built in place, so edits to Python files need no reinstall.
flask_restful_async/.built: $(CSRC) pyproject.toml $(VENV)/.stamp-venv $(HIREDIS)
	@scripts/system-deps.sh $(SYSPKGS)
	rm -f flask_restful_async/_core*.so
	$(PIP) install --no-build-isolation --no-deps -e .
	touch $@

build: flask_restful_async/.built

run: build
	@scripts/system-deps.sh $(SYSPKGS) $(REDISPKGS)
	@scripts/run-example.sh $(PY) $(HOST) $(PORT)

test: build $(VENV)/.stamp-test
	@scripts/system-deps.sh $(TESTSYSPKGS)
	$(MAKE) test-c
	$(MAKE) fuzz FUZZ_RUNS=30000
	$(PY) -m pytest $(TESTS) -q $(PYTEST_ARGS)

test-c: $(VENV)/.stamp-venv $(HIREDIS)
	@$(MAKE) -s -C tests/c run PYTHON=$(CURDIR)/$(PY)
	@$(MAKE) -s -C tests/c run-tsan

# libFuzzer targets (ASan + UBSan) for the parser glue, chunked framing and response helpers,
# each run for FUZZ_SECONDS after replaying fuzz/regressions/; with FUZZ_RUNS, a fixed number
# of inputs from a fixed seed instead (make test: repeatable, so CI cannot go red by chance).
fuzz:
	@scripts/system-deps.sh $(FUZZPKGS)
	$(MAKE) -C fuzz run SECONDS=$(FUZZ_SECONDS) RUNS=$(FUZZ_RUNS)

# The whole suite with the extension built under ASan + UBSan, in build/asan/ so the normal
# in-place build is left alone.  Python itself is not instrumented, so the runtime is preloaded
# and leak checking is off here (CPython's own allocations at exit would drown it).
ASAN_LIBS = $$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)
test-asan: $(VENV)/.stamp-test $(HIREDIS)
	@scripts/system-deps.sh $(TESTSYSPKGS)
	rm -rf build/asan && mkdir -p build/asan
	cp -r flask_restful_async build/asan/
	rm -f build/asan/flask_restful_async/_core*.so
	FRA_SANITIZE=1 $(PY) setup.py -q build_ext --build-lib build/asan --build-temp build/asan-obj
	$(MAKE) -s -C tests/c run SANITIZE=1 PYTHON=$(CURDIR)/$(PY)
	PYTHONPATH=$(CURDIR)/build/asan LD_PRELOAD="$(ASAN_LIBS)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 FRA_SANITIZED=1 \
	$(PY) -m pytest $(TESTS) -q -p no:cacheprovider $(PYTEST_ARGS)

# The server under valgrind memcheck with a request-heavy load (ASGI and WSGI); fails on memory
# lost through the extension.  Not part of make test (it needs minutes on a slow machine).
leakcheck: build
	@scripts/system-deps.sh valgrind $(REDISPKGS)
	$(PY) scripts/leakcheck.py

bench: build $(VENV)/.stamp-bench
	@scripts/system-deps.sh $(BENCHPKGS)
	$(PY) bench/run.py $(BENCH_ARGS)

# hello only: no Redis scenario, so no redis-server to install
bench-smoke: build $(VENV)/.stamp-bench
	@scripts/system-deps.sh $(SMOKEPKGS)
	$(PY) bench/run.py --smoke $(BENCH_ARGS)

clean:
	rm -rf build *.egg-info flask_restful_async/_core*.so flask_restful_async/.built tests/c/build fuzz/build

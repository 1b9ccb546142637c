# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Debian packages the test suite talks to (real clients and real peers; chromium for the
# web UI in a real browser, driven by Playwright; nftables for the partitions between one
# location and one backend in tests/e2e/test_locations.py; certbot's RFC 2136 plugin,
# lego and pebble, the ACME test server, for the DNS-01 challenges of tests/e2e/test_acme.py;
# ldnsutils and zonemaster-cli, validators of the signed zone in tests/e2e/test_dnssec.py).
TEST_DEBS  := dnsutils knot-dnsutils knot nsd bind9 unbound iproute2 util-linux nftables openssl ddclient inadyn curl chromium python3-certbot-dns-rfc2136 lego pebble ldnsutils zonemaster-cli
# Peer servers and the load generator for `make bench`.
BENCH_DEBS := dnsutils nsd knot gdnsd pdns-server pdns-backend-bind dnsperf util-linux
# A C compiler and the headers of the system python3 (the venv's), for the optional C hit
# loop of the UDP reader below.
BUILD_DEBS := gcc libc6-dev python3-dev

# The optional C hit loop of the UDP reader, compiled in place for the venv's Python (or, before
# the venv exists, for $(PYTHON), which creates it). Without a compiler or Python.h dynserver
# runs the pure-Python loop, with a warning; under CI=true that is an error, so the suite's
# native tests cannot skip there. Nothing to do while the .c file does not exist.
HITLOOP_C  := $(wildcard dynserver/server/_hitloop.c)
SYSCONFIG   = $(shell { [ -x $(BIN)/python ] && echo $(BIN)/python || echo $(PYTHON); }) -c 'import sysconfig; print($(1))'
HITLOOP_SO  = $(if $(HITLOOP_C),dynserver/server/_hitloop$(shell $(call SYSCONFIG,sysconfig.get_config_var("EXT_SUFFIX"))))

.PHONY: run test lint unit bench debs-build debs-test debs-bench clean

$(BIN)/dynserver: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "dynserver needs Python 3.11+"'
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

run: debs-build $(BIN)/dynserver $(HITLOOP_SO)
	$(BIN)/dynserver serve --config zones/dynserver.toml

ifneq ($(HITLOOP_C),)
$(HITLOOP_SO): $(HITLOOP_C) | debs-build $(BIN)/dynserver
	@$(CC) -O2 -fPIC -shared -Wall -Wextra -fno-strict-aliasing -pthread \
		-I"$$($(call SYSCONFIG,sysconfig.get_paths()["include"]))" -o $@ $< \
	|| { rm -f $@; \
	     if [ "$(CI)" = true ]; then echo "error: could not build $@ (CI=true)" >&2; exit 1; fi; \
	     echo "warning: could not build $@ (needs $(BUILD_DEBS)):" \
	          "dynserver falls back to the pure-Python UDP loop" >&2; }
endif

debs-build:
	@./.ci/debs $(BUILD_DEBS)

debs-test:
	@./.ci/debs $(TEST_DEBS)

debs-bench:
	@./.ci/debs $(BENCH_DEBS)

lint: $(BIN)/dynserver
	$(BIN)/ruff check dynserver tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Coverage of the test process, printed as a table of the files not fully covered and
# the total ([tool.coverage.*] in pyproject.toml says what is measured).
unit: $(BIN)/dynserver $(HITLOOP_SO)
	$(BIN)/pytest --cov=dynserver --cov-report=term:skip-covered

test: debs-build debs-test $(BIN)/dynserver lint unit

bench: debs-build debs-bench $(BIN)/dynserver $(HITLOOP_SO)
	$(BIN)/python bench/dnsperf_compare.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	rm -f dynserver/server/_hitloop*.so

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

.PHONY: run test lint unit bench debs-test debs-bench clean

$(BIN)/dynserver: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "dynserver needs Python 3.11+"'
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

run: $(BIN)/dynserver
	$(BIN)/dynserver serve --config zones/dynserver.toml

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
unit: $(BIN)/dynserver
	$(BIN)/pytest --cov=dynserver --cov-report=term:skip-covered

test: debs-test $(BIN)/dynserver lint unit

bench: debs-bench $(BIN)/dynserver
	$(BIN)/python bench/dnsperf_compare.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

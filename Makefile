# pinctrl-daemon developer entry points.  Run as root on Debian (bookworm):
#   make run    sandbox OVS + OVN with the golden topology, daemon in the foreground
#               (MODE=split: beside a live ovn-controller)
#   make test   everything, unit + integration against real OVS
# Debian's interpreter, not the first python3 on PATH (a pyenv build on
# some machines, which cannot see Debian's packages): the venv is made with
# --system-site-packages so that python-ovs is Debian's python3-openvswitch,
# whose C JSON parser (ovs._json) PyPI's "ovs" cannot build here (no
# libopenvswitch-dev); it parses the Southbound's updates ~60x faster
# (src/pinctrl/support/runtime.py).
PYTHON ?= /usr/bin/python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
# ethtool: netdev sandbox offloads; bind9-dnsutils (dig), isc-dhcp-client
# (dhclient -6), socat (service-monitor backends): the real-client tests;
# python3-venv: the venv.
DEB_PKGS = openvswitch-switch ovn-common ovn-central ovn-host busybox iproute2 \
           ethtool bind9-dnsutils isc-dhcp-client ndisc6 frr kea-dhcp6-server \
           python3-venv socat
# make deb: Debian's packaging tools and the package's own dependencies
# (the .deb test of `make test` installs it with dpkg -i); man-db: man -l.
DEB_BUILD_PKGS = debhelper dh-python pybuild-plugin-pyproject python3-all \
                 python3-setuptools lintian python3-openvswitch python3-os-ken \
                 python3-prometheus-client man-db

.PHONY: all deps venv run test unit typecheck integration bench fuzz soak deb clean FORCE

all: test

# Debian packages: installed only when a binary or package is missing.
deps:
	@missing=0; \
	for b in ovs-vswitchd ovsdb-server ovs-ofctl ovn-sbctl ovn-northd busybox ip \
	         ethtool dig dhclient rdisc6; do \
	    command -v $$b >/dev/null 2>&1 || missing=1; \
	done; \
	$(PYTHON) -c 'import ovs._json, ensurepip' 2>/dev/null || missing=1; \
	for p in $(DEB_BUILD_PKGS); do \
	    dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || missing=1; \
	done; \
	if [ $$missing = 1 ]; then \
	    pkgs="$(DEB_PKGS) $(DEB_BUILD_PKGS)"; \
	    if [ "$$(id -u)" != 0 ]; then echo "run as root to install: $$pkgs"; exit 1; fi; \
	    echo "installing $$pkgs"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends $$pkgs >/dev/null; \
	fi

# A venv made by another interpreter or without the system's site-packages
# (an older checkout's) is made again.
VENV_HOME = $(shell sed -n 's/^home = //p' $(VENV)/pyvenv.cfg 2>/dev/null)-$(shell \
            sed -n 's/^include-system-site-packages = //p' $(VENV)/pyvenv.cfg 2>/dev/null)
ifneq ($(VENV_HOME),$(patsubst %/,%,$(dir $(realpath $(PYTHON))))-true)
$(VENV)/.installed: FORCE
endif
FORCE:

# pip keeps Debian's ovs 3.1.0 (pyproject asks for ovs>=3.1); the check
# fails the build if PyPI's pure-Python one got in anyway.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv --clear --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -c 'import ovs.json, sys; sys.exit(ovs.json.PARSER != "C" and \
	    "$(VENV): python-ovs has no C JSON parser (ovs._json)")'
	touch $@

venv: $(VENV)/.installed

# MODE=split: real ovn-northd + ovn-controller programming br-int through
# the daemon's proxy (default: take-over, the recorded flows).
run: deps venv
	$(PY) -m testbed.demo $(if $(MODE),--mode $(MODE))

# mypy over src/ (settings in pyproject.toml [tool.mypy]).
typecheck: venv
	$(PY) -m mypy src

unit: venv typecheck
	$(PY) -m pytest -q tests/unit bench/tests

integration: deps venv
	$(PY) -m pytest -q tests/integration

test: deps venv typecheck
	$(PY) -m pytest -q tests bench/tests

# Side by side with real ovn-controller 23.03 (root, ~15 min; BENCH_QUICK=1: < 3 min).
# Prints the table, appends JSON lines to bench-results.jsonl, draws
# bench/latest.png (bench/plot.py).  README "Benchmark".
bench: deps venv $(VENV)/.bench-installed
	$(PY) -m bench

# Bench-only Python packages (pyproject extra "bench": py-spy, matplotlib).
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

# Long decoder fuzzing (hypothesis, random seeds; PINCTRL_FUZZ_EXAMPLES per
# test, default 5000).  `make test` runs a bounded, derandomized version.
fuzz: venv
	PINCTRL_FUZZ=long $(PY) -m pytest -q tests/unit/test_fuzz_decoders.py \
	    --hypothesis-show-statistics

# Long faults + flood + fuzzing (root); prints faults survived, inputs tried,
# crashes, bindings lost, peak RSS.  PINCTRL_FAULT_ROUNDS (5),
# PINCTRL_FLOOD_SECONDS (60), PINCTRL_FUZZ_EXAMPLES (2000) set the lengths.
soak: deps venv
	$(PY) -m tests.soak.run_soak

# Debian package, built with debhelper + pybuild for Debian's python3 and
# checked by lintian: build/deb/pinctrl-daemon_<version>_all.deb
# (packaging/build-deb.sh; README "Install from the Debian package").
deb: deps
	packaging/build-deb.sh build/deb

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

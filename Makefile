# Neutrino build, test and demo entry points. See README.md.

GO        ?= go
# raft v1.7.3 + memberlist v0.6.0 use go-metrics' compat layer; this tag
# selects hashicorp/go-metrics (lab-notes.md).
export GOFLAGS := -tags=hashicorpmetrics
BIN       := bin/neutrino
# VERSION is what servers announce in gossip (README: Upgrades).
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
PKGS      := ./...
TEST_TIMEOUT ?= 25m
# RACE_LOGS holds the race detector's reports during make test; a failed
# race run prints them (race-reports) and keeps its exit status.
RACE_LOGS ?= $(CURDIR)/.race-logs
RACE_TEST  = GORACE="log_path=$(RACE_LOGS)/race" $(GO) test -vet=off -race -count=1
ON_RACE_FAIL = || { rc=$$?; $(MAKE) --no-print-directory race-reports; exit $$rc; }
BENCH     ?= .
BENCHTIME ?= 1s
# FUZZ scales the execution counts 'make fuzz' gives each fuzz target.
# Counts, not durations: go1.26's fuzz coordinator can report its own
# -fuzztime deadline as a failure ("context deadline exceeded", no
# crasher: golang/go#75804, fixed in go1.27), which failed a CI run.
# Each count is about 5 s of fuzzing here (docs/architecture.md,
# "Hardening of what listens"); minimizing a new input is bounded too.
FUZZ      ?= 1
FUZZ_MIN  ?= 200x
# Benchmarks of ./scenarios that make bench runs on Vagrant too.
VAGRANT_BENCH ?= GatewayFailover|LeaderKill|OVSRestart

.PHONY: all build test race-reports fuzz lint tidy-check bench nemesis upgrade-test deps demo demo-stop clean \
	vagrant-deps docker vagrant-image vagrant-up vagrant-test vagrant-down

all: build

build:
	$(GO) build -ldflags "-X neutrino/cluster.version=$(VERSION)" -o $(BIN) ./cmd/neutrino

# deps installs the Debian packages the project needs (idempotent, root).
deps:
	.ci/deps

# test installs what it needs and runs every test with the race detector
# (the scenario packages after the others and one at a time: each runs
# clusters of real processes whose gossip timings a machine loaded by
# parallel race-built packages would turn into false deaths), then the
# timing soak the race detector makes meaningless, without it, then each
# fuzz target (make fuzz), then the scenario suite again on the
# Vagrant cluster (docker provider; it fails, never skips, where dockerd
# cannot start). Its go test runs skip go vet (-vet=off): lint ran it on
# every package first.
test: deps lint tidy-check vagrant-image
	@rm -rf $(RACE_LOGS) && mkdir -p $(RACE_LOGS)
	$(RACE_TEST) -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v '^neutrino/scenarios') $(ON_RACE_FAIL)
	$(RACE_TEST) -p 1 -timeout $(TEST_TIMEOUT) ./scenarios/... $(ON_RACE_FAIL)
	$(GO) test -vet=off -count=1 -run 'TestGossipQuietNoFalseDeaths' ./cluster
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory vagrant-test VAGRANT_TEST_FLAGS=-vet=off

# race-reports prints the race detector's reports of the last make test
# (GORACE log_path: one file per process that found a race), so that a
# failed run ends with them whole rather than interleaved with logs.
race-reports:
	@for f in $(RACE_LOGS)/race.*; do [ -f "$$f" ] || continue; echo "=== race report $$f"; head -c 20000 "$$f"; done

# fuzz runs each fuzz target for a bounded number of executions (FUZZ
# scales them); a crasher is written to the package's testdata/fuzz.
fuzz:
	@run() { echo "$$1: $$(($$2 * $(FUZZ))) executions"; $(GO) test -vet=off -run '^$$' -timeout 5m -fuzz "^$$1\$$" -fuzztime $$(($$2 * $(FUZZ)))x -fuzzminimizetime $(FUZZ_MIN) $$3 || exit 1; }; \
	run FuzzDHCPv4 100000 ./southbound/dhcp; \
	run FuzzDHCPv6 100000 ./southbound/dhcp; \
	run FuzzNeutronWrite 15000 ./northbound; \
	run FuzzDecodePacketIn 60000 ./southbound/openflow; \
	run FuzzDecodeFlowStats 60000 ./southbound/openflow; \
	run FuzzDecodeMeterConfig 60000 ./southbound/openflow; \
	run FuzzParseARP 200000 ./southbound/packet; \
	run FuzzApply 4000 ./fsm

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

# tidy-check fails when 'go mod tidy' would change go.mod or go.sum.
tidy-check:
	@cp go.mod go.mod.tidy-check && cp go.sum go.sum.tidy-check; \
	$(GO) mod tidy; rc=$$?; \
	diff -u go.mod.tidy-check go.mod && diff -u go.sum.tidy-check go.sum; d=$$?; \
	mv go.mod.tidy-check go.mod; mv go.sum.tidy-check go.sum; \
	if [ $$rc != 0 ] || [ $$d != 0 ]; then echo "go mod tidy changes go.mod/go.sum: run it and commit"; exit 1; fi

# upgrade-test runs the rolling-upgrade test alone, verbose (make test runs
# it with ./scenarios/...): a netns lab of the previous release (05fefc1,
# from history or scenarios/upgrade/testdata) upgraded to this tree one
# node at a time under writes and traffic (README: Upgrades).
upgrade-test:
	$(GO) test -count=1 -v -timeout 10m -run '^(TestRollingUpgrade|TestPreviousArchive)$$' ./scenarios/upgrade

# nemesis runs the loopback fault test long: 50 faults on 3 servers, then on 5.
nemesis:
	NEUTRINO_NEMESIS_FAULTS=$${NEUTRINO_NEMESIS_FAULTS:-50} NEUTRINO_NEMESIS_SERVERS=$${NEUTRINO_NEMESIS_SERVERS:-3,5} \
		$(GO) test -count=1 -v -timeout 60m -run 'TestNemesis' ./scenarios/nemesis

# bench runs every Go benchmark once per size and prints the figures
# (the Vagrant cluster's among them: it needs dockerd and the base image).
# Figures reported through internal/benchfig also go to bench.json (and a
# table at the end), so runs can be compared.
bench: export NEUTRINO_BENCH_FIGURES := $(CURDIR)/bench.figures
bench: deps vagrant-image
	rm -f bench.figures bench.failed
	{ $(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -count=1 -timeout 30m $(PKGS) || touch bench.failed; } | tee bench.out | grep -E '^(Benchmark|ok|FAIL|---)'
	@echo "# the failover scenarios' benchmarks again, on the Vagrant cluster:"
	{ NEUTRINO_SCENARIO_DRIVER=vagrant $(GO) test -run '^$$' -bench '$(VAGRANT_BENCH)' -benchtime $(BENCHTIME) -count=1 -timeout 30m ./scenarios || touch bench.failed; } | tee -a bench.out | grep -E '^(Benchmark|ok|FAIL|---)'
	@echo "# figures (bench.json):"
	$(GO) run ./internal/benchfig/benchtable -in bench.figures -out bench.json -commit $(VERSION)
	@# The pipes above hide go test's status: a failed benchmark fails make bench, after the table.
	@if [ -e bench.failed ]; then rm -f bench.failed; echo "make bench: a benchmark failed (see bench.out)"; exit 1; fi

demo: deps build
	scenarios/demo/cluster.sh

demo-stop:
	scenarios/demo/cluster.sh stop

clean:
	rm -rf bin bench.out bench.figures bench.json bench.failed

# --- Vagrant (README: Vagrant) ---------------------------------------------
# The Vagrantfile's cluster on the docker provider: make vagrant-up, then
# the API at http://10.213.0.11:9696 (server-1's management address),
# `docker exec -it nv-chassis-1 bash` on a host; make vagrant-down.
VAGRANT_SCENARIOS ?= .
# The scenarios that make test leaves to the netns run, to keep within its
# time budget: the service scenarios' extra clusters (on Vagrant it runs
# one load balancer test, one VPN test and the DHCP checks), and the
# scenarios that check what the compiled pipeline does rather than what
# hosts do (port security, tenant isolation, flow removal, realization,
# key isolation, firewall rules, trunk VLANs, QoS meters: the same flows
# on either driver);
# make vagrant-test VAGRANT_SKIP= runs them too.
VAGRANT_SKIP ?= ^(TestLBaaSOverlap|TestLBaaSFailover|TestVPNFailover|TestPortSecurity|TestIPv6PortSecurity|TestTenantIsolation|TestPortDeleteRemovesFlows|TestRealizedWrites|TestKeysIsolateCollidingTenants|TestFirewall|TestTrunkVLANSubport|TestQoSBandwidthLimitAndDSCP)$$
VAGRANT_ENV := VAGRANT_DEFAULT_PROVIDER=docker VAGRANT_NO_COLOR=1 NEUTRINO_VAGRANT_BINARY=$(CURDIR)/$(BIN)

vagrant-deps:
	.ci/deps-vagrant

# docker starts dockerd if it does not answer (its own pidfile and log).
docker: vagrant-deps
	scenarios/vagrant/dockerd.sh

# vagrant-image builds the base image from Debian's packages, or reuses it
# (cached by a hash of its package list and apt sources).
vagrant-image: docker
	scenarios/vagrant/image.sh

vagrant-up: build vagrant-image
	$(VAGRANT_ENV) vagrant up --provider=docker --parallel
	@echo "API: http://10.213.0.11:9696 (server-1), http://10.213.0.12:9696, http://10.213.0.13:9696"

# VAGRANT_TEST_FLAGS: make test passes -vet=off (lint vetted every package).
VAGRANT_TEST_FLAGS ?=
# vagrant-test runs the scenario suite on its own Vagrant clusters
# (containers nvt-*, networks in 10.214-10.243), beside a vagrant-up one.
vagrant-test: vagrant-image
	NEUTRINO_SCENARIO_DRIVER=vagrant $(GO) test $(VAGRANT_TEST_FLAGS) -count=1 -p 1 -timeout $(TEST_TIMEOUT) -run '$(VAGRANT_SCENARIOS)' -skip '$(VAGRANT_SKIP)' ./scenarios

# vagrant-down removes the cluster's containers (and a crashed test run's:
# nv-* and nvt-*) one after the other with docker rm -f (`vagrant destroy`
# alone stops each gracefully, 40-60 s; all at once can make Docker 20.10
# lose a network's endpoint count), lets Vagrant forget them, removes the Vagrant networks on
# 10.213-10.243 (the tests') and dangling image layers; only the cached
# base image stays.
vagrant-down:
	@if docker info >/dev/null 2>&1; then \
		for id in $$(docker ps -aq --filter name=^nv- --filter name=^nvt-); do docker rm -f -v $$id >/dev/null; done; \
		$(VAGRANT_ENV) vagrant destroy -f >/dev/null; \
		nets=$$(docker network ls --format '{{.Name}}' | grep -E '^vagrant_network_10\.2(1[3-9]|[23][0-9]|4[0-3])\.' || true); \
		[ -z "$$nets" ] || docker network rm $$nets >/dev/null; \
		docker image prune -f >/dev/null; \
		left=$$(docker ps -aq --filter name=^nv- --filter name=^nvt-; docker network ls --format '{{.Name}}' | grep -E '^vagrant_network_10\.2(1[3-9]|[23][0-9]|4[0-3])\.'); \
		if [ -n "$$left" ]; then echo "vagrant-down: left behind: $$left" >&2; exit 1; fi; \
		echo "vagrant-down: no container or network left; images:"; docker images neutrino-base; \
	else echo "vagrant-down: dockerd is not running: nothing to remove"; fi
	rm -rf .vagrant

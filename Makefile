# Neutrino build, test and demo entry points. See README.md.

GO        ?= go
# raft v1.7.3 + memberlist v0.6.0 use go-metrics' compat layer; this tag
# selects hashicorp/go-metrics (lab-notes.md).
export GOFLAGS := -tags=hashicorpmetrics
BIN       := bin/neutrino
PKGS      := ./...
TEST_TIMEOUT ?= 25m
BENCH     ?= .
BENCHTIME ?= 1s
# FUZZTIME bounds each fuzz target 'make test' runs.
FUZZTIME  ?= 20s

.PHONY: all build test lint tidy-check bench nemesis deps demo demo-stop clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/neutrino

# deps installs the Debian packages the project needs (idempotent, root).
deps:
	.ci/deps

# test installs what it needs and runs every test with the race detector,
# then the timing soak the race detector makes meaningless, without it,
# then each fuzz target for FUZZTIME.
test: deps lint tidy-check
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)
	$(GO) test -count=1 -run 'TestGossipQuietNoFalseDeaths' ./cluster
	$(GO) test -run '^$$' -fuzz '^FuzzDHCPv4$$' -fuzztime $(FUZZTIME) ./southbound/dhcp
	$(GO) test -run '^$$' -fuzz '^FuzzDHCPv6$$' -fuzztime $(FUZZTIME) ./southbound/dhcp

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

# nemesis runs the loopback fault test long: 50 faults on 3 servers, then on 5.
nemesis:
	NEUTRINO_NEMESIS_FAULTS=$${NEUTRINO_NEMESIS_FAULTS:-50} NEUTRINO_NEMESIS_SERVERS=$${NEUTRINO_NEMESIS_SERVERS:-3,5} \
		$(GO) test -count=1 -v -timeout 60m -run 'TestNemesis' ./scenarios/nemesis

# bench runs every Go benchmark once per size and prints the figures.
bench: deps
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -count=1 -timeout 30m $(PKGS) | tee bench.out | grep -E '^(Benchmark|ok|FAIL|---)'

demo: deps build
	scenarios/demo/cluster.sh

demo-stop:
	scenarios/demo/cluster.sh stop

clean:
	rm -rf bin bench.out

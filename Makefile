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

.PHONY: all build test lint bench deps demo demo-stop clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/neutrino

# deps installs the Debian packages the project needs (idempotent, root).
deps:
	.ci/deps

# test installs what it needs and runs every test with the race detector,
# then the timing soak the race detector makes meaningless, without it.
test: deps
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)
	$(GO) test -count=1 -run 'TestGossipQuietNoFalseDeaths' ./cluster

lint:
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

# bench runs every Go benchmark once per size and prints the figures.
bench: deps
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -count=1 -timeout 30m $(PKGS) | tee bench.out | grep -E '^(Benchmark|ok|FAIL|---)'

demo: deps build
	scenarios/demo/cluster.sh

demo-stop:
	scenarios/demo/cluster.sh stop

clean:
	rm -rf bin bench.out

#!/usr/bin/env bash
# Regenerates oldlog-05fefc1.json.gz: the Raft log entries that fill every
# table (filledFSM) written by the release before issue 17 (commit 05fefc1),
# with the rows that release's state machine built from them.
# TestReplayOldLog replays the entries with today's code and compares.
# Usage (from the repository root): fsm/testdata/oldlog-gen.sh
set -euo pipefail
root=$(pwd)
old=$(mktemp -d)
trap 'git worktree remove --force "$old"' EXIT
git worktree add --detach "$old" 05fefc1 >/dev/null
cd "$old"
# Record every entry the test helper applies.
sed -i 's|\treturn f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: buf}).(\*Result)|\trecorded = append(recorded, recordedEntry{index, buf})\n&|' fsm/fsm_test.go
cat > fsm/oldlog_gen_test.go <<'GO'
package fsm

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"testing"
)

type recordedEntry struct {
	Index uint64
	Data  []byte
}

var recorded []recordedEntry

func TestGenerateOldLog(t *testing.T) {
	recorded = nil
	f := filledFSM(t)
	out := struct {
		Commit  string
		Entries []recordedEntry
		Tables  map[string][]any
	}{"05fefc1", recorded, tableRows(t, f.State().db)}
	file, err := os.Create(os.Getenv("OLDLOG_OUT"))
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(file)
	if err := json.NewEncoder(zw).Encode(out); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := file.Close(); err != nil {
		t.Fatal(err)
	}
}
GO
OLDLOG_OUT="$root/fsm/testdata/oldlog-05fefc1.json.gz" go test -tags=hashicorpmetrics -count=1 -run '^TestGenerateOldLog$' ./fsm

package northbound_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"neutrino/fsm"
	"neutrino/northbound"
)

// olderServerBackend refuses every command outside the baseline as the
// cluster does while a server of an older version remains.
type olderServerBackend struct{ localBackend }

func (b *olderServerBackend) Apply(ctx context.Context, cmd []byte) (*fsm.Result, error) {
	types, err := fsm.CommandTypes(cmd)
	if err != nil {
		return nil, err
	}
	for _, t := range types {
		if !fsm.BaselineCommands.Has(t) {
			return nil, fmt.Errorf("%w: server s2 runs version v0 that does not know command %s", northbound.ErrUnsupported, t)
		}
	}
	return b.localBackend.Apply(ctx, cmd)
}

// TestUnsupportedCommandIs503: a write refused for an older server is a
// 503 UpgradeIncomplete naming the server, and applies nothing; the
// finalize is refused by the local check before any forwarding, and once
// the check passes it commits.
func TestUnsupportedCommandIs503(t *testing.T) {
	f := fsm.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	be := &olderServerBackend{localBackend{f: f}}
	cfg := northbound.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	checkErr := fmt.Errorf("%w: server s3 runs version v0 that does not know command UpgradeFinalize (type 180)", northbound.ErrUnsupported)
	cfg.UpgradeCheck = func() error { return checkErr }
	cfg.FinalizeUpgrade = func(ctx context.Context) (*fsm.Result, error) {
		cmd, err := fsm.Encode(fsm.CmdUpgradeFinalize, fsm.UpgradeFinalizeRequest{Commands: fsm.KnownCommands()})
		if err != nil {
			return nil, err
		}
		return be.Apply(ctx, cmd)
	}
	hs := httptest.NewServer(northbound.New(cfg, be, f).Handler())
	t.Cleanup(hs.Close)
	s := &apiServer{t: t, base: hs.URL}

	var out map[string]any
	code := s.do("POST", "/v1/cluster/upgrade/finalize", nil, nil, &out)
	checkNeutronError(t, code, http.StatusServiceUnavailable, out, northbound.ErrTypeUpgradeIncomplete)
	if msg := out["NeutronError"].(map[string]any)["message"].(string); !strings.Contains(msg, "server s3 runs version v0") ||
		strings.Contains(msg, northbound.ErrUnsupported.Error()) {
		t.Fatalf("local check message: %q", msg)
	}
	// Past the local check the backend refuses, with the same answer.
	checkErr = errors.New("not an upgrade error")
	code = s.do("POST", "/v1/cluster/upgrade/finalize", nil, nil, &out)
	checkNeutronError(t, code, http.StatusServiceUnavailable, out, northbound.ErrTypeUpgradeIncomplete)
	if msg := out["NeutronError"].(map[string]any)["message"].(string); !strings.Contains(msg, "server s2 runs version v0") {
		t.Fatalf("backend message: %q", msg)
	}
	if f.State().Read().UpgradeFinalizedAt() != 0 {
		t.Fatal("a refused finalize applied")
	}
	// A member may not finalize.
	code = s.do("POST", "/v1/cluster/upgrade/finalize", map[string]string{"X-Project-Id": "p1", "X-Roles": "member"}, nil, &out)
	checkNeutronError(t, code, http.StatusForbidden, out, "")

	// Baseline writes go on.
	code = s.do("POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"name": "n"}}, &out)
	if code != http.StatusCreated {
		t.Fatalf("baseline write: %d %v", code, out)
	}
	// Every server upgraded: the finalize commits.
	be2 := &localBackend{f: f}
	cfg.UpgradeCheck = nil
	cfg.FinalizeUpgrade = func(ctx context.Context) (*fsm.Result, error) {
		cmd, err := fsm.Encode(fsm.CmdUpgradeFinalize, fsm.UpgradeFinalizeRequest{Commands: fsm.KnownCommands()})
		if err != nil {
			return nil, err
		}
		return be2.Apply(ctx, cmd)
	}
	hs2 := httptest.NewServer(northbound.New(cfg, be2, f).Handler())
	t.Cleanup(hs2.Close)
	s2 := &apiServer{t: t, base: hs2.URL}
	if code := s2.do("POST", "/v1/cluster/upgrade/finalize", nil, nil, &out); code != http.StatusOK || f.State().Read().UpgradeFinalizedAt() == 0 {
		t.Fatalf("finalize: %d %v", code, out)
	}
}

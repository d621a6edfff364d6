package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"neutrino/fsm"
	"neutrino/southbound/vpnaas"
)

// startVPN starts the VPN manager of a gateway chassis: the IPsec
// connections of the routers whose active gateway this chassis is, run
// from the replicated state it watches (southbound/vpnaas).
func (a *Agent) startVPN() {
	if !slices.Contains(a.cfg.Chassis.Roles, "gateway") || a.cfg.Chassis.OVSDB == "" || a.cfg.VPNDisabled {
		return
	}
	w, err := a.Watch(vpnaas.Tables...)
	if err != nil {
		a.log.Error("vpnaas: cannot watch the state; no VPN on this gateway", "err", err)
		return
	}
	m := vpnaas.New(vpnaas.Config{
		Chassis: a.cfg.Node, OVSDB: a.localOVSDB(),
		Dir: filepath.Join(a.cfg.DataDir, "vpn"), NamespacePrefix: a.cfg.VPNNamespacePrefix,
		Watch: w, Fenced: a.Fenced, Report: a.reportVPN, Logger: a.log,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.vpnStop = func() {
		cancel()
		<-done
		w.Close()
	}
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
}

func (a *Agent) stopVPN() {
	if a.vpnStop != nil {
		a.vpnStop()
	}
}

// reportVPN sends a status report to the servers (PUT
// /v1/vpn/agent-status, forwarded to the leader), trying each until one
// takes it.
func (a *Agent) reportVPN(ctx context.Context, r fsm.VPNStatusRequest) error {
	body, err := json.Marshal(map[string]any{"chassis": r.Chassis, "services": r.Services, "connections": r.Connections})
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range a.watchServers() {
		url := s
		if !strings.Contains(url, "://") {
			url = "http://" + url
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, url+"/v1/vpn/agent-status", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if tok := a.authToken(ctx); tok != "" {
			req.Header.Set("X-Auth-Token", tok)
		}
		c := http.Client{Timeout: 5 * time.Second, Transport: a.peerTransport()}
		resp, err := c.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %s: %s", s, resp.Status, bytes.TrimSpace(b)))
		if resp.StatusCode/100 == 4 {
			break // the same on every server
		}
	}
	if len(errs) == 0 {
		return errors.New("no server known")
	}
	return errors.Join(errs...)
}

package agent

import (
	"context"
	"time"

	"neutrino/northbound"
)

// startQuotaSync commits this server's configured default quotas each time
// it becomes the leader (northbound.Server.SyncQuotaDefaults), retrying
// until it succeeds or the leadership ends: the quotas the state machine
// enforces are replicated, and the leader's configuration is the one in
// force. It returns a function that stops it.
func (a *Agent) startQuotaSync(srv *northbound.Server) func() {
	events, unsubscribe := a.cluster.SubscribeLeadership()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer unsubscribe()
		stopTerm := func() {}
		defer func() { stopTerm() }()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					return
				}
				stopTerm()
				stopTerm = func() {}
				if ev.IsLeader {
					stopTerm = a.goSyncQuotas(ctx, srv)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// goSyncQuotas runs syncQuotas until it is done or the returned function
// is called.
func (a *Agent) goSyncQuotas(ctx context.Context, srv *northbound.Server) context.CancelFunc {
	ctx, cancel := context.WithCancel(ctx)
	go a.syncQuotas(ctx, srv)
	return cancel
}

func (a *Agent) syncQuotas(ctx context.Context, srv *northbound.Server) {
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := srv.SyncQuotaDefaults(cctx)
		cancel()
		if err == nil {
			return
		}
		a.log.Warn("default quotas not committed yet", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

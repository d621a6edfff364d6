package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"neutrino/cluster"
	"neutrino/northbound"
)

// TestBackendErrorsSayWhatIsKnown: only errors that prove the command was
// not appended become "not applied"; everything else is an unknown
// outcome (issue 11, case 3).
func TestBackendErrorsSayWhatIsKnown(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{fmt.Errorf("cluster: apply: %w", cluster.ErrNotLeader), northbound.ErrNotLeader},
		{cluster.ErrNotServer, northbound.ErrNotLeader},
		{fmt.Errorf("cluster: apply: %w (%w)", cluster.ErrLeaderNotReady, context.DeadlineExceeded), northbound.ErrNotReady},
		{fmt.Errorf("cluster: apply: not proposed: %w", context.DeadlineExceeded), northbound.ErrNotReady},
		{fmt.Errorf("cluster: apply: %w (%w)", cluster.ErrUnknownOutcome, raft.ErrLeadershipLost), northbound.ErrUnknownOutcome},
		{fmt.Errorf("cluster: apply: %w (%w)", cluster.ErrUnknownOutcome, context.DeadlineExceeded), northbound.ErrUnknownOutcome},
		{errors.New("something else"), northbound.ErrUnknownOutcome},
	} {
		if got := apiErr(tc.err); !errors.Is(got, tc.want) {
			t.Errorf("%v -> %v, want %v", tc.err, got, tc.want)
		}
	}
	if apiErr(nil) != nil {
		t.Error("nil error mapped to an error")
	}
}

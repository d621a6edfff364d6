package lab_test

import (
	"time"

	"neutrino/scenarios/harness"
)

// Raw API calls and one-look flow checks for the lab's tests (package
// harness). TestRealizedWrites is a scenario (scenarios/realized_test.go).

const headerWait = "X-Neutrino-Wait"

// waitTimeout bounds each waited write of the tests (X-Neutrino-Wait-Timeout).
const waitTimeout = 10 * time.Second

var apiHTTP = harness.APIHTTP

// apiResult is one raw API call.
type apiResult = harness.APIResult

// call sends a JSON request (body may be nil) and returns the answer.
func call(method, url string, header map[string]string, body any) (apiResult, error) {
	return harness.Call(method, url, header, body)
}

// mustCall is call that fails tb unless the status is want.
func (p *pipeLab) mustCall(want int, method, url string, header map[string]string, body any) apiResult {
	p.tb.Helper()
	return p.e().MustCall(want, method, url, header, body)
}

// noFlowsOf checks, with one dump per chassis, that no chassis has a flow
// with a port's cookie owner (taken while the port existed).
func (p *pipeLab) noFlowsOf(owner uint64, portID, when string) {
	p.tb.Helper()
	p.e().NoFlowsOf(owner, portID, when)
}

// flowsMention checks, with one dump, that chassis has a Neutrino flow
// mentioning s (an address) and returns them.
func (p *pipeLab) flowsMention(chassis, s, when string) []ofFlow {
	p.tb.Helper()
	return p.e().FlowsMention(chassis, s, when)
}

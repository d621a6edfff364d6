package lab_test

// The data-path helpers of the lab's tests that no test in this package
// uses at the moment: their tests became driver-agnostic scenarios
// (package scenarios, helpers in scenarios/harness), and the helpers stay
// under their names for the lab tests other work adds.
var _ = []any{
	(*capture).seenFrom,
	(*pipeLab).capture,
	(*pipeLab).captureOn,
	(*pipeLab).group,
	(*pipeLab).listen,
	(*pipeLab).ofport,
	(*pipeLab).ping,
	(*pipeLab).pingFails,
	(*pipeLab).rule,
	(*pipeLab).seenAt,
	(*pipeLab).tcpConnect,
	(*pipeLab).tcpDenied,
	(*pipeLab).tcpExchange,
	(*pipeLab).tcpOK,
	(*pipeLab).trace,
	(*pipeLab).traceOnFailure,
	(*pipeLab).traceVM,
	dropped,
	lastLine,
	matching,
	packetLoss,
	sources,
}

package lab_test

// The data-path helpers of the lab's tests that no test in this package
// uses at the moment: their tests became driver-agnostic scenarios
// (package scenarios, helpers in scenarios/harness), and the helpers stay
// under their names for the lab tests other work adds.
var _ = []any{
	(*capture).seenFrom,
	(*pipeLab).activeGateway,
	(*pipeLab).capture,
	(*pipeLab).captureOn,
	(*pipeLab).extNet,
	(*pipeLab).floatingIP,
	(*pipeLab).gatewayRouter,
	(*pipeLab).group,
	(*pipeLab).kill,
	(*pipeLab).listen,
	(*pipeLab).ofport,
	(*pipeLab).ping,
	(*pipeLab).pingFails,
	(*pipeLab).revive,
	(*pipeLab).rule,
	(*pipeLab).seenAt,
	(*pipeLab).start,
	(*pipeLab).tcpConnect,
	(*pipeLab).tcpDenied,
	(*pipeLab).tcpExchange,
	(*pipeLab).tcpOK,
	(*pipeLab).trace,
	(*pipeLab).traceOnFailure,
	(*pipeLab).traceVM,
	(*reply)(nil),
	(*stream).replies,
	dropped,
	externalTopo,
	externalVLAN,
	lastLine,
	matching,
	outsideIP,
	outsideVLANIP,
	packetLoss,
	sources,
	streamInterval,
}

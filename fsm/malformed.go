package fsm

// errMissing answers a command whose body decodes but lacks the object it
// acts on (FuzzApply found such bodies crash their handler): the leader
// never proposes one, so it is refused like any invalid input, the same
// way on every replica, instead of stopping the server on a nil pointer.
func errMissing(cmd, what string) error {
	return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: %s without %s.", cmd, what)
}

package keystonetest_test

import (
	"testing"

	"neutrino/northbound/keystonetest"
)

// TestStart starts a Keystone, makes a project and a member, and checks
// that the member gets a project-scoped token and that a revoked admin
// token stops working.
func TestStart(t *testing.T) {
	ks := keystonetest.Start(t, keystonetest.Options{})
	p := ks.CreateProject("kt-alpha")
	if p == "" {
		t.Fatal("no project id")
	}
	ks.CreateUser("kt-alice", "pw-alice", p, "member")
	tok, exp, err := ks.Token("kt-alice", "pw-alice", "kt-alpha")
	if err != nil || tok == "" || exp.IsZero() {
		t.Fatalf("token: %q %v %v", tok, exp, err)
	}
	if _, _, err := ks.Token("kt-alice", "wrong", "kt-alpha"); err == nil {
		t.Fatal("a wrong password got a token")
	}
	ks.Revoke(tok)
}

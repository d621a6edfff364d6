package main

import (
	"strings"
	"testing"
)

func TestRealizationAndWait(t *testing.T) {
	body := `200 {"revision": 12, "leader": "s1", "chassis": [
		{"chassis": "ch1", "realized_revision": 12, "connected": true, "master": true, "error": ""},
		{"chassis": "ch2", "realized_revision": 9, "connected": false, "master": false, "error": "boom"}]}`
	for _, args := range [][]string{{"realization"}, {"cluster", "realization"}} {
		f, out, errOut, code := cli(t, map[string]string{"GET /v1/realization": body}, nil, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		if got := f.lines(); len(got) != 1 || got[0] != "GET /v1/realization" {
			t.Fatalf("%v: requests %q", args, got)
		}
		for _, want := range []string{"Leader:    s1", "Revision:  12", "ch1      12        0       True       True",
			"ch2      9         3       False      False   boom"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: stdout does not contain %q:\n%s", args, want, out)
			}
		}
	}

	f, _, errOut, code := cli(t, map[string]string{"DELETE /v2.0/networks/n1": "204 ", "GET /v2.0/networks/n1": "200 {\"network\": " + net1 + "}"},
		nil, "network", "delete", "n1", "--wait", "--wait-timeout", "5s")
	if code != 0 {
		t.Fatalf("delete --wait: exit %d: %s", code, errOut)
	}
	for _, r := range f.reqs {
		wait, timeout := r.Header.Get("X-Neutrino-Wait"), r.Header.Get("X-Neutrino-Wait-Timeout")
		if strings.HasPrefix(r.Line, "GET ") && (wait != "" || timeout != "") {
			t.Errorf("%s: a read asked to wait", r.Line)
		}
		if strings.HasPrefix(r.Line, "DELETE ") && (wait != "realized" || timeout != "5") {
			t.Errorf("%s: wait %q timeout %q", r.Line, wait, timeout)
		}
	}
}

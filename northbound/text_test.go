package northbound_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"neutrino/northbound"
)

// TestValidText: which bodies the text check refuses; JSON syntax is the
// decoder's business, not this check's.
func TestValidText(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"a": "plain"}`, true},
		{"{\"a\": \"\u00e9t\u00e9 \xf0\x9f\x98\x80\"}", true},
		{`{"a": "\u00e9 \uD83D\uDE00 \ud83d\ude00"}`, true},
		{`{"a": "\\uD800"}`, true},   // an escaped backslash, then text
		{`{"a": "\uD8`, true},        // truncated: the decoder refuses it
		{`{"a": "\\\uD800"}`, false}, // an escaped backslash, then an escape
		{`{"a": "\uD800\u0041"}`, false},
		{`{"a": "\uDFFF"}`, false},
		{`{"a": "\uDBFF"}`, false},
		{"{\"a\": \"\xff\"}", false},
		{"{\"a\": \"\xed\xa0\x80\"}", false}, // a surrogate encoded as UTF-8
		{"{\"a\": \"\xc3\"}", false},
	} {
		if err := northbound.ValidText([]byte(tc.body)); (err == nil) != tc.ok {
			t.Errorf("%q: got %v, want ok=%v", tc.body, err, tc.ok)
		}
	}
}

// BenchmarkValidText: the UTF-8 and surrogate check every write body goes
// through, on a bulk create of 1,000 ports with non-ASCII names and
// escapes (about 160 kB).
func BenchmarkValidText(b *testing.B) {
	ports := make([]any, 1000)
	for i := range ports {
		ports[i] = map[string]any{"network_id": "6f1e4a4c-0000-4000-8000-000000000000",
			"name": fmt.Sprintf("port-%d-été-\U0001F600", i), "description": "<a & b>",
			"fixed_ips": []any{map[string]any{"ip_address": fmt.Sprintf("10.0.%d.%d", i/250, i%250+2)}}}
	}
	body, err := json.Marshal(map[string]any{"ports": ports})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := northbound.ValidText(body); err != nil {
			b.Fatal(err)
		}
	}
}

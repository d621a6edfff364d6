package northbound

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestKeystoneCacheBounds fills the validation cache far past its size and
// checks it stays bounded, that stale entries go first, and that a cached
// identity ends at the token's expiry whatever the TTL.
func TestKeystoneCacheBounds(t *testing.T) {
	k, err := newKeystoneAuth(KeystoneConfig{URL: "http://127.0.0.1:1", Username: "u", Password: "p", ProjectName: "s",
		CacheSize: 64, CacheTTL: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	k.now = func() time.Time { return now }
	for i := 0; i < 1000; i++ {
		var key [32]byte
		copy(key[:], fmt.Sprint(i))
		k.mu.Lock()
		k.store(key, cachedToken{fresh: now.Add(time.Minute), expires: now.Add(time.Hour)})
		k.mu.Unlock()
		if n := k.cacheLen(); n > 64 {
			t.Fatalf("cache holds %d entries after %d inserts; bound 64", n, i+1)
		}
	}
	// Once every entry is stale, a full cache empties of them.
	now = now.Add(2 * time.Minute)
	k.mu.Lock()
	k.store([32]byte{1}, cachedToken{fresh: now.Add(time.Minute), expires: now.Add(time.Hour)})
	k.mu.Unlock()
	if n := k.cacheLen(); n != 1 {
		t.Fatalf("after stale entries: %d entries, want 1", n)
	}

	c := cachedToken{ident: Identity{ProjectID: "p"}, fresh: now.Add(time.Hour), expires: now.Add(time.Second)}
	if id, err := c.result(now); err != nil || id.ProjectID != "p" {
		t.Fatalf("before expiry: %v %v", id, err)
	}
	if _, err := c.result(now.Add(time.Second)); !errors.Is(err, errTokenExpired) {
		t.Fatalf("at expiry: %v", err)
	}
}

// TestKeystoneTokenBody reads Keystone's token bodies: roles to policy,
// both time formats, and an unscoped token refused.
func TestKeystoneTokenBody(t *testing.T) {
	for _, c := range []struct {
		body            string
		admin, readOnly bool
		err             error
	}{
		{`{"token": {"expires_at": "2030-01-01T00:00:00.000000Z", "project": {"id": "p"}, "user": {"id": "u"}, "roles": [{"name": "member"}, {"name": "reader"}]}}`, false, false, nil},
		{`{"token": {"expires_at": "2030-01-01T00:00:00", "project": {"id": "p"}, "user": {"id": "u"}, "roles": [{"name": "reader"}]}}`, false, true, nil},
		{`{"token": {"expires_at": "2030-01-01T00:00:00Z", "project": {"id": "p"}, "user": {"id": "u"}, "roles": [{"name": "admin"}]}}`, true, false, nil},
		{`{"token": {"expires_at": "2030-01-01T00:00:00Z", "project": {"id": "p"}, "user": {"id": "u"}, "roles": [{"name": "load-balancer_observer"}]}}`, false, true, nil},
		{`{"token": {"expires_at": "2030-01-01T00:00:00Z", "user": {"id": "u"}, "roles": []}}`, false, false, errTokenUnscoped},
	} {
		id, exp, err := parseKeystoneToken([]byte(c.body))
		if !errors.Is(err, c.err) {
			t.Fatalf("%s: err %v, want %v", c.body, err, c.err)
		}
		if err != nil {
			continue
		}
		if id.ProjectID != "p" || id.UserID != "u" || id.Admin != c.admin || id.ReadOnly != c.readOnly || exp.Year() != 2030 {
			t.Fatalf("%s: %+v %s", c.body, id, exp)
		}
	}
}

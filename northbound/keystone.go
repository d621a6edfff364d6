package northbound

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// AuthKeystone validates X-Auth-Token against Keystone v3 (keystone.go).
const AuthKeystone = "keystone"

// DefaultTokenCacheTTL is how long a validation is reused, as
// keystonemiddleware's token_cache_time: a revoked token is refused after
// at most this long.
const DefaultTokenCacheTTL = 300 * time.Second

// DefaultTokenCacheSize bounds the validations kept.
const DefaultTokenCacheSize = 10000

// KeystoneConfig configures --auth-strategy keystone. Tokens are validated
// as keystonemiddleware does: GET /v3/auth/tokens with the token in
// X-Subject-Token, authenticated by a service user's own token (the user
// needs the admin or service role).
type KeystoneConfig struct {
	// URL is Keystone's identity endpoint (http://host:5000 or .../v3).
	URL string
	// Username, Password, ProjectName: the service user that validates.
	Username    string
	Password    string
	ProjectName string
	// UserDomain, ProjectDomain: domain names ("Default" when empty).
	UserDomain    string
	ProjectDomain string
	// CacheTTL: how long a validation (or a refusal) is reused
	// (DefaultTokenCacheTTL when zero). A token's own expiry is honoured
	// whatever the TTL.
	CacheTTL time.Duration
	// CacheSize bounds the cache (DefaultTokenCacheSize when zero).
	CacheSize int
	// Timeout bounds one call to Keystone (5 s when zero).
	Timeout time.Duration
}

// keystoneAuth validates tokens and caches the answers for a bounded time.
type keystoneAuth struct {
	cfg  KeystoneConfig
	base string // ends in /v3
	hc   *http.Client
	log  *slog.Logger
	now  func() time.Time

	// svcMu serialises fetching the service token; svc is read under mu.
	svcMu sync.Mutex

	mu         sync.Mutex
	svc        string
	svcExpires time.Time
	cache      map[[32]byte]cachedToken
	inflight   map[[32]byte]*validation
}

// cachedToken is one validation: an identity or a refusal, reused until
// fresh; an identity also ends at the token's expiry.
type cachedToken struct {
	ident   Identity
	err     error
	fresh   time.Time
	expires time.Time
}

// validation is a call to Keystone in flight that concurrent requests with
// the same token wait for, so a cold token costs one call, not one per
// request.
type validation struct {
	done chan struct{}
	res  cachedToken
}

var (
	errTokenExpired = newError(http.StatusUnauthorized, "HTTPUnauthorized",
		"The request you have made requires authentication: the token has expired.")
	errTokenUnscoped = newError(http.StatusUnauthorized, "HTTPUnauthorized",
		"The request you have made requires authentication: the token is not scoped to a project.")
)

func newKeystoneAuth(cfg KeystoneConfig, log *slog.Logger) (*keystoneAuth, error) {
	if cfg.URL == "" {
		return nil, errors.New("keystone: no URL")
	}
	if cfg.Username == "" || cfg.Password == "" || cfg.ProjectName == "" {
		return nil, errors.New("keystone: the service user needs a name, password and project")
	}
	if cfg.UserDomain == "" {
		cfg.UserDomain = "Default"
	}
	if cfg.ProjectDomain == "" {
		cfg.ProjectDomain = "Default"
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultTokenCacheTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultTokenCacheSize
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	base := strings.TrimRight(cfg.URL, "/")
	if !strings.HasSuffix(base, "/v3") {
		base += "/v3"
	}
	return &keystoneAuth{cfg: cfg, base: base, log: log.With("component", "keystone"), now: time.Now,
		hc:    &http.Client{Timeout: cfg.Timeout},
		cache: map[[32]byte]cachedToken{}, inflight: map[[32]byte]*validation{}}, nil
}

// identify answers who a token stands for, from the cache when fresh.
func (k *keystoneAuth) identify(ctx context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, errUnauthenticated
	}
	// Keyed by a hash, as keystonemiddleware does: the cache holds no
	// usable token.
	key := sha256.Sum256([]byte(token))
	k.mu.Lock()
	c, ok := k.cache[key]
	if ok && k.now().Before(c.fresh) {
		k.mu.Unlock()
		return c.result(k.now())
	}
	v, waiting := k.inflight[key]
	if !waiting {
		v = &validation{done: make(chan struct{})}
		k.inflight[key] = v
	}
	k.mu.Unlock()
	if waiting {
		select {
		case <-v.done:
			return v.res.result(k.now())
		case <-ctx.Done():
			return Identity{}, keystoneUnavailable(ctx.Err())
		}
	}
	v.res = k.validate(ctx, token)
	k.mu.Lock()
	delete(k.inflight, key)
	if !v.res.fresh.IsZero() {
		k.store(key, v.res)
	}
	k.mu.Unlock()
	close(v.done)
	return v.res.result(k.now())
}

func (c cachedToken) result(now time.Time) (Identity, error) {
	if c.err != nil {
		return Identity{}, c.err
	}
	if !now.Before(c.expires) {
		return Identity{}, errTokenExpired
	}
	return c.ident, nil
}

// store adds an entry (k.mu held). A full cache first drops stale
// entries, then an eighth of the rest (map order: random), so the cost of
// evicting is spread over many inserts.
func (k *keystoneAuth) store(key [32]byte, c cachedToken) {
	if len(k.cache) >= k.cfg.CacheSize {
		now := k.now()
		for kk, e := range k.cache {
			if !now.Before(e.fresh) {
				delete(k.cache, kk)
			}
		}
		for kk := range k.cache {
			if len(k.cache) < k.cfg.CacheSize-k.cfg.CacheSize/8 {
				break
			}
			delete(k.cache, kk)
		}
	}
	k.cache[key] = c
}

// cacheLen is the number of cached validations.
func (k *keystoneAuth) cacheLen() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.cache)
}

// validate asks Keystone about a token. The answer is cacheable (fresh
// set) when Keystone said yes or no; an unreachable Keystone is a 503 that
// is not remembered.
func (k *keystoneAuth) validate(ctx context.Context, token string) cachedToken {
	ctx, cancel := context.WithTimeout(ctx, k.cfg.Timeout)
	defer cancel()
	for attempt := 0; attempt < 2; attempt++ {
		svc, err := k.serviceToken(ctx, attempt > 0)
		if err != nil {
			return cachedToken{err: keystoneUnavailable(err)}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.base+"/auth/tokens", nil)
		if err != nil {
			return cachedToken{err: keystoneUnavailable(err)}
		}
		req.Header.Set("X-Auth-Token", svc)
		req.Header.Set("X-Subject-Token", token)
		req.Header.Set("Accept", "application/json")
		resp, err := k.hc.Do(req)
		if err != nil {
			return cachedToken{err: keystoneUnavailable(err)}
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return cachedToken{err: keystoneUnavailable(err)}
		}
		fresh := k.now().Add(k.cfg.CacheTTL)
		switch resp.StatusCode {
		case http.StatusOK:
			id, expires, err := parseKeystoneToken(body)
			if err != nil {
				if errors.Is(err, errTokenUnscoped) {
					return cachedToken{err: errTokenUnscoped, fresh: fresh}
				}
				return cachedToken{err: keystoneUnavailable(err)}
			}
			return cachedToken{ident: id, expires: expires, fresh: fresh}
		case http.StatusNotFound:
			// Keystone's answer for a token it does not know, that expired
			// or was revoked.
			return cachedToken{err: errUnauthenticated, fresh: fresh}
		case http.StatusUnauthorized:
			// Our own token expired or was revoked: get a new one, once.
			continue
		default:
			k.log.Warn("token validation failed", "status", resp.StatusCode, "body", truncate(body, 200))
			return cachedToken{err: keystoneUnavailable(fmt.Errorf("keystone answered %d", resp.StatusCode))}
		}
	}
	return cachedToken{err: keystoneUnavailable(errors.New("the service user's token is refused"))}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

func keystoneUnavailable(err error) *apiError {
	return newError(http.StatusServiceUnavailable, "ServiceUnavailable",
		"The identity service cannot validate the token: %v", err)
}

// parseKeystoneToken reads the identity from a token validation body.
func parseKeystoneToken(body []byte) (Identity, time.Time, error) {
	var v struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			User      struct {
				ID string `json:"id"`
			} `json:"user"`
			Project *struct {
				ID string `json:"id"`
			} `json:"project"`
			Roles []struct {
				Name string `json:"name"`
			} `json:"roles"`
		} `json:"token"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return Identity{}, time.Time{}, fmt.Errorf("token body: %w", err)
	}
	expires, err := parseKeystoneTime(v.Token.ExpiresAt)
	if err != nil {
		return Identity{}, time.Time{}, fmt.Errorf("token expires_at: %w", err)
	}
	if v.Token.Project == nil || v.Token.Project.ID == "" {
		return Identity{}, time.Time{}, errTokenUnscoped
	}
	id := Identity{ProjectID: v.Token.Project.ID, UserID: v.Token.User.ID}
	for _, r := range v.Token.Roles {
		id.Roles = append(id.Roles, r.Name)
	}
	id.Admin = hasRole(id.Roles, "admin")
	// Neutron's default policy: writes need member (or admin); a reader,
	// or a role Neutron does not know, may list and show.
	id.ReadOnly = !id.Admin && !hasRole(id.Roles, "member")
	return id, expires, nil
}

// parseKeystoneTime reads Keystone's times: RFC 3339, or without a zone
// (UTC), as it renders a time capped by an application credential.
func parseKeystoneTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse("2006-01-02T15:04:05.999999999", s)
}

func hasRole(roles []string, want string) bool {
	for _, r := range roles {
		if strings.EqualFold(r, want) {
			return true
		}
	}
	return false
}

// serviceToken returns the service user's token, fetched again when it is
// within a minute of expiry or when renew is set (Keystone refused it).
func (k *keystoneAuth) serviceToken(ctx context.Context, renew bool) (string, error) {
	k.mu.Lock()
	tok, exp := k.svc, k.svcExpires
	k.mu.Unlock()
	if tok != "" && !renew && k.now().Add(time.Minute).Before(exp) {
		return tok, nil
	}
	k.svcMu.Lock()
	defer k.svcMu.Unlock()
	k.mu.Lock()
	if k.svc != tok && k.svc != "" {
		// Another request renewed it meanwhile.
		tok = k.svc
		k.mu.Unlock()
		return tok, nil
	}
	k.mu.Unlock()
	tok, exp, err := k.passwordToken(ctx)
	if err != nil {
		return "", err
	}
	k.mu.Lock()
	k.svc, k.svcExpires = tok, exp
	k.mu.Unlock()
	return tok, nil
}

// passwordToken authenticates the service user (POST /v3/auth/tokens).
func (k *keystoneAuth) passwordToken(ctx context.Context) (string, time.Time, error) {
	type named struct {
		Name string `json:"name"`
	}
	var body struct {
		Auth struct {
			Identity struct {
				Methods  []string `json:"methods"`
				Password struct {
					User struct {
						Name     string `json:"name"`
						Domain   named  `json:"domain"`
						Password string `json:"password"`
					} `json:"user"`
				} `json:"password"`
			} `json:"identity"`
			Scope struct {
				Project struct {
					Name   string `json:"name"`
					Domain named  `json:"domain"`
				} `json:"project"`
			} `json:"scope"`
		} `json:"auth"`
	}
	body.Auth.Identity.Methods = []string{"password"}
	u := &body.Auth.Identity.Password.User
	u.Name, u.Domain.Name, u.Password = k.cfg.Username, k.cfg.UserDomain, k.cfg.Password
	body.Auth.Scope.Project.Name, body.Auth.Scope.Project.Domain.Name = k.cfg.ProjectName, k.cfg.ProjectDomain
	data, err := json.Marshal(body)
	if err != nil {
		return "", time.Time{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.base+"/auth/tokens", bytes.NewReader(data))
	if err != nil {
		return "", time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.hc.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("service user authentication: %w", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("service user authentication: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		k.log.Error("service user authentication failed", "user", k.cfg.Username, "status", resp.StatusCode, "body", truncate(rb, 200))
		return "", time.Time{}, fmt.Errorf("service user %q authentication: keystone answered %d", k.cfg.Username, resp.StatusCode)
	}
	var v struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
		} `json:"token"`
	}
	if err := json.Unmarshal(rb, &v); err != nil {
		return "", time.Time{}, fmt.Errorf("service user authentication: %w", err)
	}
	exp, err := parseKeystoneTime(v.Token.ExpiresAt)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("service user token expires_at: %w", err)
	}
	tok := resp.Header.Get("X-Subject-Token")
	if tok == "" {
		return "", time.Time{}, errors.New("service user authentication: no X-Subject-Token")
	}
	return tok, exp, nil
}

// KeystoneTokens is a service user's Keystone token for a process's own
// API calls (a chassis agent's watch and status reports under
// --auth-strategy keystone): fetched with the password, reused until a
// minute before it expires, then fetched again.
type KeystoneTokens struct{ k *keystoneAuth }

// NewKeystoneTokens checks cfg; Token authenticates on first use.
func NewKeystoneTokens(cfg KeystoneConfig, log *slog.Logger) (*KeystoneTokens, error) {
	if log == nil {
		log = slog.Default()
	}
	k, err := newKeystoneAuth(cfg, log)
	if err != nil {
		return nil, err
	}
	return &KeystoneTokens{k: k}, nil
}

// Token returns a valid token, renewing it when it is about to expire.
func (t *KeystoneTokens) Token(ctx context.Context) (string, error) {
	tok, err := t.k.serviceToken(ctx, false)
	if err != nil {
		return "", fmt.Errorf("keystone: %w", err)
	}
	return tok, nil
}

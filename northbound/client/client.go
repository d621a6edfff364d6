// Package client is a small Go client of Neutrino's HTTP API: the Neutron
// v2.0 compatible resources under /v2.0 and our own cluster endpoints under
// /v1. Resources are handled generically, as JSON objects named by their
// collection ("networks") and singular ("network"), so a new resource needs
// no new client code.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Headers the API reads the caller's identity from, as Neutron's
// keystonecontext middleware does.
const (
	HeaderProjectID = "X-Project-Id"
	HeaderRoles     = "X-Roles"
	HeaderToken     = "X-Auth-Token"
)

// Headers of Neutrino's own.
const (
	HeaderRevision    = "X-Neutrino-Revision"
	HeaderWait        = "X-Neutrino-Wait"
	HeaderWaitTimeout = "X-Neutrino-Wait-Timeout"
)

// DefaultWaitTimeout is how long the server waits for realization when
// WaitTimeout is 0.
const DefaultWaitTimeout = 30 * time.Second

// HeaderIdempotencyKey names a write; a resend with the same key applies
// at most once and answers the first outcome.
const HeaderIdempotencyKey = "Idempotency-Key"

// Error types the client retries a write on, with the same key.
const (
	ErrTypeOutcomeUnknown     = "OutcomeUnknown"
	ErrTypeServiceUnavailable = "ServiceUnavailable"
)

// ErrTypeRealizationTimeout is the Error.Type of a write that was committed
// (at Error.Revision) but not realized on every chassis in time.
const ErrTypeRealizationTimeout = "RealizationTimeout"

// neutronPrefix is where the Neutron v2.0 API lives under the endpoint.
const neutronPrefix = "/v2.0/"

// DefaultTimeout bounds one request when the caller gives no HTTP client.
const DefaultTimeout = 30 * time.Second

// Client talks to one Neutrino API endpoint. Set the exported fields after
// New and before the first request; a Client is then safe for concurrent use.
type Client struct {
	endpoint string // scheme://host[:port][/prefix], no trailing slash

	// HTTPClient sends the requests.
	HTTPClient *http.Client
	// ProjectID scopes requests to a project (X-Project-Id); empty acts as admin under noauth.
	ProjectID string
	// Roles are sent comma-joined in X-Roles.
	Roles []string
	// Token is sent in X-Auth-Token.
	Token string
	// Stale lets any server answer reads from its own replica instead of the leader.
	Stale bool
	// Wait makes every write (POST, PUT, DELETE) answer only once every
	// chassis realized it (X-Neutrino-Wait: realized). A write committed
	// but not realized in time fails with an *Error of type
	// RealizationTimeout and status 504 that carries the revision.
	Wait bool
	// WaitTimeout bounds the server's wait (X-Neutrino-Wait-Timeout);
	// 0 is the server's default, DefaultWaitTimeout. The HTTP client's
	// timeout is stretched to outlast it.
	WaitTimeout time.Duration
	// UserAgent is sent in User-Agent.
	UserAgent string
	// Logger receives one debug record per request; nil logs nothing.
	Logger *slog.Logger
}

// New returns a client of the API at endpoint, e.g. "http://127.0.0.1:9696".
func New(endpoint string) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q: want http://host:port or https://host:port", endpoint)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("endpoint %q: must not have a query or fragment", endpoint)
	}
	return &Client{
		endpoint:   strings.TrimRight(u.String(), "/"),
		HTTPClient: &http.Client{Timeout: DefaultTimeout},
		UserAgent:  "neutrino-client",
	}, nil
}

// TrustCA makes the client verify an https endpoint with the CA
// certificates in the PEM file caFile instead of the system's (the
// cluster's own CA, `neutrino tls ca create`). Call it after setting
// HTTPClient, if you set one.
func (c *Client) TrustCA(caFile string) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: DefaultTimeout}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.HTTPClient.Transport = tr
	return nil
}

// At returns a copy of the client that sends to another endpoint (another
// node of the cluster), with the same settings and HTTP client.
func (c *Client) At(endpoint string) (*Client, error) {
	n, err := New(endpoint)
	if err != nil {
		return nil, err
	}
	cp := *c
	cp.endpoint = n.endpoint
	return &cp, nil
}

// Endpoint is the base URL requests go to.
func (c *Client) Endpoint() string { return c.endpoint }

// WithWait returns a copy of the client whose writes wait until every
// chassis realized them, for at most timeout (0: the server's default).
func (c *Client) WithWait(timeout time.Duration) *Client {
	cp := *c
	cp.Wait, cp.WaitTimeout = true, timeout
	return &cp
}

// Do sends one request to path (relative to the endpoint, e.g.
// "/v2.0/networks") with in encoded as the JSON body when non-nil, and
// decodes a JSON response into out when non-nil. JSON numbers decode as
// json.Number into interface values, so ids and revisions keep every digit.
// An error status returns *Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	if method == http.MethodGet && c.Stale {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("stale", "true")
		query = q
	}
	target := c.endpoint + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var buf []byte
	if in != nil {
		var err error
		if buf, err = json.Marshal(in); err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
	}
	hc := c.httpClient()
	write := method != http.MethodGet && method != http.MethodHead
	if c.Wait && write {
		wait := DefaultWaitTimeout
		if c.WaitTimeout > 0 {
			wait = c.WaitTimeout
		}
		// Let the server answer 504 before the client gives up.
		if least := wait + 10*time.Second; hc.Timeout != 0 && hc.Timeout < least {
			cp := *hc
			cp.Timeout = least
			hc = &cp
		}
	}
	// Every write carries an idempotency key, so resending it after an
	// unknown outcome or an unavailable cluster applies it at most once.
	key := ""
	if write {
		key = newKey()
	}
	budget := hc.Timeout
	if budget == 0 {
		budget = DefaultTimeout
	}
	deadline := time.Now().Add(budget)
	backoff := retryBackoff
	for {
		resp, raw, err := c.send(ctx, hc, method, target, buf, key)
		if write && retryable(resp, raw, err) && time.Now().Add(backoff).Before(deadline) {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%s %s: %w", method, target, ctx.Err())
			case <-t.C:
			}
			backoff = min(2*backoff, maxRetryBackoff)
			continue
		}
		if err != nil {
			return err
		}
		return c.answer(resp, raw, target, out)
	}
}

// Retry pacing of writes whose outcome is unknown or that found no leader.
const (
	retryBackoff    = 200 * time.Millisecond
	maxRetryBackoff = time.Second
)

// retryable reports whether a write should be resent with its key: the
// connection failed, or the server said the outcome is unknown or it
// cannot serve right now (no leader, not ready).
func retryable(resp *http.Response, raw []byte, err error) bool {
	if err != nil {
		return true
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		return false
	}
	e := decodeErrorResponse(resp, raw)
	return e.Type == ErrTypeOutcomeUnknown || e.Type == ErrTypeServiceUnavailable
}

// newKey returns a random idempotency key.
func newKey() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// send sends one attempt and reads its answer.
func (c *Client) send(ctx context.Context, hc *http.Client, method, target string, buf []byte, key string) (*http.Response, []byte, error) {
	var body io.Reader
	if buf != nil {
		body = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	req.Header.Set("Accept", "application/json")
	if buf != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set(HeaderIdempotencyKey, key)
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	if c.ProjectID != "" {
		req.Header.Set(HeaderProjectID, c.ProjectID)
	}
	if len(c.Roles) > 0 {
		req.Header.Set(HeaderRoles, strings.Join(c.Roles, ","))
	}
	if c.Token != "" {
		req.Header.Set(HeaderToken, c.Token)
	}
	if c.Wait && method != http.MethodGet && method != http.MethodHead {
		req.Header.Set(HeaderWait, "realized")
		if c.WaitTimeout > 0 {
			req.Header.Set(HeaderWaitTimeout, strconv.FormatFloat(c.WaitTimeout.Seconds(), 'f', -1, 64))
		}
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if c.Logger != nil {
		c.Logger.DebugContext(ctx, "api request", "method", method, "url", target,
			"status", resp.StatusCode, "duration", time.Since(start), "key", key)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read response: %w", method, target, err)
	}
	return resp, raw, nil
}

// answer turns a response into Do's result.
func (c *Client) answer(resp *http.Response, raw []byte, target string, out any) error {
	method := resp.Request.Method
	if resp.StatusCode >= 400 {
		e := decodeErrorResponse(resp, raw)
		e.Revision, _ = strconv.ParseUint(resp.Header.Get(HeaderRevision), 10, 64)
		return e
	}
	if out == nil || resp.StatusCode == http.StatusNoContent || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, target, err)
	}
	return nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// collectionPath escapes each segment of a collection: some live below
// another ("vpn/ikepolicies").
func collectionPath(collection string) string {
	segs := strings.Split(collection, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return neutronPrefix + strings.Join(segs, "/")
}

// listKey is a collection's key in a list answer: its last segment with
// dashes as underscores ("vpn/endpoint-groups" -> "endpoint_groups",
// "security-groups" -> "security_groups"), as Neutron names them.
func listKey(collection string) string {
	return strings.ReplaceAll(collection[strings.LastIndex(collection, "/")+1:], "-", "_")
}

func resourcePath(collection, id string) string {
	return collectionPath(collection) + "/" + url.PathEscape(id)
}

// Create creates one resource: POST /v2.0/{collection} with {singular: body}.
func (c *Client) Create(ctx context.Context, collection, singular string, body map[string]any) (map[string]any, error) {
	var out map[string]json.RawMessage
	if err := c.Do(ctx, http.MethodPost, collectionPath(collection), nil, map[string]any{singular: body}, &out); err != nil {
		return nil, err
	}
	return member[map[string]any](out, singular)
}

// CreateBulk creates several resources in one request, as Neutron's bulk
// create does: POST /v2.0/{collection} with {collection: bodies}.
func (c *Client) CreateBulk(ctx context.Context, collection string, bodies []map[string]any) ([]map[string]any, error) {
	var out map[string]json.RawMessage
	if err := c.Do(ctx, http.MethodPost, collectionPath(collection), nil, map[string]any{listKey(collection): bodies}, &out); err != nil {
		return nil, err
	}
	return member[[]map[string]any](out, listKey(collection))
}

// List lists a collection: GET /v2.0/{collection}?query. The query carries
// Neutron filters (name=x), tags, fields, sort_key/sort_dir and limit/marker.
func (c *Client) List(ctx context.Context, collection string, query url.Values) ([]map[string]any, error) {
	var out map[string]json.RawMessage
	if err := c.Do(ctx, http.MethodGet, collectionPath(collection), query, nil, &out); err != nil {
		return nil, err
	}
	return member[[]map[string]any](out, listKey(collection))
}

// Get reads one resource by id: GET /v2.0/{collection}/{id}.
func (c *Client) Get(ctx context.Context, collection, singular, id string) (map[string]any, error) {
	var out map[string]json.RawMessage
	if err := c.Do(ctx, http.MethodGet, resourcePath(collection, id), nil, nil, &out); err != nil {
		return nil, err
	}
	return member[map[string]any](out, singular)
}

// Update changes the given attributes of one resource: PUT
// /v2.0/{collection}/{id} with {singular: body}.
func (c *Client) Update(ctx context.Context, collection, singular, id string, body map[string]any) (map[string]any, error) {
	var out map[string]json.RawMessage
	if err := c.Do(ctx, http.MethodPut, resourcePath(collection, id), nil, map[string]any{singular: body}, &out); err != nil {
		return nil, err
	}
	return member[map[string]any](out, singular)
}

// Delete deletes one resource: DELETE /v2.0/{collection}/{id}.
func (c *Client) Delete(ctx context.Context, collection, id string) error {
	return c.Do(ctx, http.MethodDelete, resourcePath(collection, id), nil, nil, nil)
}

// ReplaceTags sets the tags of one resource to exactly tags, with Neutron's
// tag extension: PUT /v2.0/{collection}/{id}/tags with {"tags": [...]}.
func (c *Client) ReplaceTags(ctx context.Context, collection, id string, tags []string) ([]string, error) {
	if tags == nil {
		tags = []string{} // Neutron wants a list, not null
	}
	var out struct {
		Tags []string `json:"tags"`
	}
	if err := c.Do(ctx, http.MethodPut, resourcePath(collection, id)+"/tags", nil, map[string]any{"tags": tags}, &out); err != nil {
		return nil, err
	}
	return out.Tags, nil
}

// member decodes the one key of a Neutron envelope ({"network": {...}}).
// The envelope is decoded lazily so that a missing key is reported rather
// than silently giving an empty object.
func member[T any](env map[string]json.RawMessage, key string) (T, error) {
	var v T
	raw, ok := env[key]
	if !ok {
		return v, fmt.Errorf("response has no %q member", key)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("decode %q: %w", key, err)
	}
	return v, nil
}

// ErrNotFound is what Find returns when nothing has the given id or name.
var ErrNotFound = errors.New("not found")

// ErrNoUniqueMatch is what Find returns when several resources share the name.
var ErrNoUniqueMatch = errors.New("no unique match")

// Find resolves idOrName as the openstack CLI does: the resource with that
// id, or else the one resource with that name. Several with the name is
// ErrNoUniqueMatch, none is ErrNotFound.
func (c *Client) Find(ctx context.Context, collection, singular, idOrName string) (map[string]any, error) {
	if idOrName == "" {
		return nil, fmt.Errorf("%w: empty %s id or name", ErrNotFound, singular)
	}
	obj, err := c.Get(ctx, collection, singular, idOrName)
	if err == nil {
		return obj, nil
	}
	// A server may reject a malformed id with 400 rather than 404; either
	// way the argument may still be a name.
	var apiErr *Error
	if !errors.As(err, &apiErr) || (apiErr.Status != http.StatusNotFound && apiErr.Status != http.StatusBadRequest) {
		return nil, err
	}
	list, err := c.List(ctx, collection, url.Values{"name": {idOrName}})
	if err != nil {
		return nil, err
	}
	var found []map[string]any
	for _, o := range list {
		// Filter again: exact match is what makes a name unique, whatever
		// the server's filter semantics.
		if name, _ := o["name"].(string); name == idOrName {
			found = append(found, o)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w: no %s with id or name %q", ErrNotFound, singular, idOrName)
	case 1:
		return found[0], nil
	default:
		return nil, fmt.Errorf("%w: %d %ss are named %q; use an id", ErrNoUniqueMatch, len(found), singular, idOrName)
	}
}

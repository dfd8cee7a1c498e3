package client

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Client talks to a sessiond cluster. It is safe for concurrent use.
type Client struct {
	addrs []*url.URL
	// current is the index in addrs of the node in use.
	current atomic.Uint32
	// indexes holds the highest X-Sessiond-Index seen in each group.
	indexes indexBook
	// optErr is an option's mistake, which New returns.
	optErr error

	http       *http.Client
	apiKey     string
	userAgent  string
	retries    int
	baseDelay  time.Duration
	maxDelay   time.Duration
	writeRetry WriteRetry
	readYours  bool
}

// WriteRetry says which writes are retried once they may have reached a
// server (see the package documentation for the trade-off). A write that
// could not be sent at all is always tried on the next address.
type WriteRetry int

const (
	// RetryIdempotentWrites retries every write on 503 and broken
	// connections. Every write carries an Idempotency-Key, so a repeated
	// write applies at most once: a revocation answers as the first did; a
	// create, login, exchange or refresh whose first attempt applied
	// answers a conflict error (the tokens went to the lost answer). The
	// default.
	RetryIdempotentWrites WriteRetry = iota
	// RetryAllWrites is RetryIdempotentWrites (kept for callers that name it).
	RetryAllWrites
	// RetryNoWrites never repeats a write that may have reached a server.
	RetryNoWrites
)

// Option configures a Client.
type Option func(*Client)

// WithAPIKey sets the admin key sent as X-API-Key on admin endpoints.
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithHTTPClient sets the HTTP client (TLS settings, proxies). Its Timeout
// should be zero: it would also cut the event stream; bound calls with
// their context instead.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetry sets how many rounds of retries a failed request gets (n; 0
// disables retries, though a request still tries each address once when it
// cannot be sent) and the first wait between rounds (base), which doubles
// on each round up to 32×base (at most 30s), loses a random part of up to
// half (jitter), and is never shorter than the server's Retry-After. In a
// round each address is tried once, without waiting. The default is 3
// retries from 100ms.
func WithRetry(n int, base time.Duration) Option {
	return func(c *Client) {
		c.retries = max(0, n)
		if base <= 0 {
			base = 100 * time.Millisecond
		}
		c.baseDelay = base
		c.maxDelay = min(32*base, 30*time.Second)
	}
}

// WithWriteRetry chooses which writes are retried (default
// RetryIdempotentWrites).
func WithWriteRetry(mode WriteRetry) Option { return func(c *Client) { c.writeRetry = mode } }

// WithReadYourWrites turns sending X-Sessiond-Min-Index on reads on (the
// default) or off.
func WithReadYourWrites(on bool) Option { return func(c *Client) { c.readYours = on } }

// WithMinIndex seeds the remembered index, as if an answer at that index
// had been seen: reads then wait for it. The index is a plain number, as a
// single-region cluster gives it. A cluster with regions names the group
// of every index and refuses a plain one (the first read fails with
// ErrBadRequest; once an answer has named a group, the plain index is no
// longer sent): there, use WithMinIndexes.
func WithMinIndex(index uint64) Option {
	return func(c *Client) { c.indexes.observe(Index{N: index}) }
}

// WithMinIndexes seeds the remembered indexes with one index or a
// comma-separated list, as X-Sessiond-Index gives them or LastIndexes
// prints them: "1234", or "eu:1234,us:99" in a cluster with regions. Reads
// then wait until each group has applied its index. New fails with an
// error matching ErrBadIndex when list does not parse; "" seeds nothing.
func WithMinIndexes(list string) Option {
	return func(c *Client) {
		if strings.TrimSpace(list) == "" {
			return
		}
		l, err := ParseIndexes(list)
		if err != nil {
			c.optErr = errors.Join(c.optErr, fmt.Errorf("client: WithMinIndexes: %w", err))
			return
		}
		for _, i := range l {
			c.indexes.observe(i)
		}
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the nodes at addrs ("http://host:port",
// "https://host:port/prefix", or "host:port" for plain HTTP).
func New(addrs []string, opts ...Option) (*Client, error) {
	c := &Client{
		userAgent:  "sessiond-client",
		retries:    3,
		baseDelay:  100 * time.Millisecond,
		maxDelay:   3200 * time.Millisecond,
		writeRetry: RetryIdempotentWrites,
		readYours:  true,
	}
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		u, err := url.Parse(a)
		if err != nil {
			return nil, fmt.Errorf("client: address %q: %w", a, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("client: address %q must be http(s)://host:port", a)
		}
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawPath = ""
		c.addrs = append(c.addrs, u)
	}
	if len(c.addrs) == 0 {
		return nil, errors.New("client: no node address")
	}
	for _, o := range opts {
		o(c)
	}
	if c.optErr != nil {
		return nil, c.optErr
	}
	if c.http == nil {
		c.http = &http.Client{Transport: http.DefaultTransport}
	}
	return c, nil
}

// Addrs lists the node addresses in the order they are tried.
func (c *Client) Addrs() []string {
	out := make([]string, len(c.addrs))
	for i, u := range c.addrs {
		out[i] = u.String()
	}
	return out
}

// Current is the address of the node in use.
func (c *Client) Current() string { return c.addrs[c.current.Load()].String() }

// LastIndex is the highest Raft index any answer has shown this client,
// of the indexes given as plain numbers: in a single-region cluster, every
// index. A cluster with regions names the group of each index ("eu:1234"),
// and the numbers of different groups are not comparable, so there
// LastIndex stays 0: use LastIndexes.
func (c *Client) LastIndex() uint64 { return c.indexes.get("") }

// LastIndexes is the highest index any answer has shown this client in
// each group, sorted by group name: what reads send as
// X-Sessiond-Min-Index. Its String is the form WithMinIndexes takes, so
// another process can read this client's writes. In a single-region
// cluster it holds one plain index, LastIndex; with regions, the indexes
// of the groups named, and no plain one. It is empty before any answer
// carried an index.
func (c *Client) LastIndexes() Indexes { return c.indexes.all() }

// advance moves off address i (unless another call already did).
func (c *Client) advance(i uint32) {
	c.current.CompareAndSwap(i, (i+1)%uint32(len(c.addrs)))
}

type (
	leaderReadKey struct{}
	requestIDKey  struct{}
)

// WithRequestID returns a context whose calls send id as X-Request-Id
// (1–64 characters of [A-Za-z0-9._-]), so that the server's log lines of
// the call can be found. Without it every call sends a random id; a call's
// retries share its id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// LeaderRead returns a context whose reads are answered only after the
// leader has confirmed its leadership (?consistency=leader): linearizable,
// at the price of a round trip to the leader.
func LeaderRead(ctx context.Context) context.Context {
	return context.WithValue(ctx, leaderReadKey{}, true)
}

// kind says how safe a request is to repeat.
type kind int

const (
	read       kind = iota // no state change
	idempotent             // repeating it leaves the same state
	create                 // repeating it may make something twice
)

type request struct {
	method string
	path   string // escaped, from the API root
	query  url.Values
	header http.Header
	// body is sent as JSON when not nil.
	body  any
	admin bool
	// token is sent as Authorization: Bearer.
	token string
	kind  kind
}

// Header names of docs/api.md#consistency.
const (
	HeaderIndex       = "X-Sessiond-Index"
	HeaderMinIndex    = "X-Sessiond-Min-Index"
	HeaderLastContact = "X-Sessiond-Last-Contact"
)

// do sends r, retrying as the package documentation describes, and returns
// a 2xx answer with its body unread, or an error (an *Error for error
// answers).
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return nil, fmt.Errorf("client: encode request: %w", err)
		}
	}
	if r.header == nil {
		r.header = http.Header{}
	}
	if id, _ := ctx.Value(requestIDKey{}).(string); id != "" {
		r.header.Set("X-Request-Id", id)
	} else {
		r.header.Set("X-Request-Id", strings.ToLower(crand.Text()))
	}
	if r.kind != read && r.header.Get("Idempotency-Key") == "" {
		// One key for every attempt of this call: the server applies the
		// write at most once however often it is retried.
		r.header.Set("Idempotency-Key", crand.Text())
	}
	retries := 0
	tried := 0 // addresses tried since the last wait
	for {
		i := c.current.Load()
		resp, err := c.send(ctx, c.addrs[i], r, body)
		if err == nil && resp.StatusCode < 300 {
			return resp, nil
		}
		var lastErr error
		var retryAfter time.Duration
		retry := false
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("client: %s %s: %w", r.method, r.path, ctx.Err())
			}
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // the method and URL are said below
			}
			lastErr = fmt.Errorf("client: %s %s on %s: %w", r.method, r.path, c.addrs[i].Host, err)
			retry = notSent(err) || c.mayRepeat(r.kind)
		} else {
			apiErr := readError(resp)
			lastErr, retryAfter = apiErr, apiErr.RetryAfter
			switch resp.StatusCode {
			case http.StatusTooManyRequests:
				retry = true // refused before anything was done
			case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
				retry = c.mayRepeat(r.kind)
			}
		}
		if !retry {
			return nil, lastErr
		}
		c.advance(i)
		tried++
		if tried < len(c.addrs) {
			continue // another node, at once: its own Retry-After is its own
		}
		if retries >= c.retries {
			return nil, lastErr
		}
		retries++
		tried = 0
		wait := max(c.backoff(retries), retryAfter)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return nil, lastErr
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("client: %s %s: %w (after: %v)", r.method, r.path, ctx.Err(), lastErr)
		case <-t.C:
		}
	}
}

// mayRepeat says whether a request that may have reached a server is
// repeated.
func (c *Client) mayRepeat(k kind) bool {
	switch k {
	case read:
		return true
	case idempotent:
		return c.writeRetry != RetryNoWrites
	}
	// Writes that make something new carry an Idempotency-Key too: a retry
	// whose first attempt applied answers conflict instead of applying
	// again. They are repeated unless RetryNoWrites says otherwise.
	return c.writeRetry != RetryNoWrites
}

// backoff is the wait before retry n (1, 2, ...): base·2^(n-1) capped at
// maxDelay, of which a random half is taken off (jitter).
func (c *Client) backoff(n int) time.Duration {
	d := c.baseDelay
	for i := 1; i < n && d < c.maxDelay; i++ {
		d *= 2
	}
	d = min(d, c.maxDelay)
	half := d / 2
	return half + rand.N(half+1)
}

// notSent reports a failure to open the connection: the request never
// reached a server, so any request may be sent elsewhere.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func (c *Client) send(ctx context.Context, base *url.URL, r request, body []byte) (*http.Response, error) {
	u := *base
	raw := base.EscapedPath() + r.path
	p, err := url.PathUnescape(raw)
	if err != nil {
		return nil, err
	}
	u.Path, u.RawPath = p, raw
	q := url.Values{}
	for k, v := range r.query {
		q[k] = v
	}
	if r.kind == read && ctx.Value(leaderReadKey{}) != nil {
		q.Set("consistency", "leader")
	}
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if r.admin && c.apiKey != "" {
		req.Header.Set("X-API-Key", c.apiKey)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.kind == read && c.readYours {
		if v := c.indexes.minIndexHeader(); v != "" {
			req.Header.Set(HeaderMinIndex, v)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	c.indexes.observeHeader(resp.Header.Get(HeaderIndex))
	return resp, nil
}

const (
	maxErrorBody  = 1 << 20
	maxAnswerBody = 64 << 20
)

// readError reads and closes an error answer.
func readError(resp *http.Response) *Error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return decodeError(resp.StatusCode, resp.Header, body)
}

// call sends r and decodes a JSON answer into out (when not nil). It
// returns the answer's headers.
func (c *Client) call(ctx context.Context, r request, out any) (http.Header, error) {
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBody))
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: read answer: %w", r.method, r.path, err)
	}
	if out != nil && len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			return nil, fmt.Errorf("client: %s %s: decode answer: %w", r.method, r.path, err)
		}
	}
	return resp.Header, nil
}

// headerIndex is the X-Sessiond-Index of an answer: one index, its group
// named in a cluster with regions (zero when absent or not one index).
func headerIndex(h http.Header) Index {
	i, _ := parseIndex(strings.TrimSpace(h.Get(HeaderIndex)))
	return i
}

// seg escapes one path segment (user and session ids).
func seg(s string) string { return url.PathEscape(s) }

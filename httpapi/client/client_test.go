package client_test

// Behaviour of the client against fake servers: retries, backoff,
// Retry-After, failover between addresses, read-your-writes and error
// decoding.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sessiond/sessiond/httpapi/client"
	"github.com/sessiond/sessiond/transport/testkit"
)

// fake is a server whose handler a test sets, recording the requests it
// saw.
type fake struct {
	URL      string
	handler  http.Handler
	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
	at       []time.Time
}

// newFake serves h on 127.0.0.1 until the test ends.
func newFake(t *testing.T, h http.HandlerFunc) *fake {
	t.Helper()
	f := &fake{}
	srv := httptest.NewServer(f.recording(h))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// newMemFake is a fake at http://host that clients reach in memory, through
// inMemory: with no network, a test can run in a synctest bubble, where
// time is fake and every wait is exact.
func newMemFake(host string, h http.HandlerFunc) *fake {
	f := &fake{URL: "http://" + host}
	f.handler = f.recording(h)
	return f
}

// inMemory makes a client reach the fakes made by newMemFake.
func inMemory(fakes ...*fake) client.Option {
	byHost := memTransport{}
	for _, f := range fakes {
		byHost[strings.TrimPrefix(f.URL, "http://")] = f.handler
	}
	return client.WithHTTPClient(&http.Client{Transport: byHost})
}

// memTransport serves each request with the handler of its host.
type memTransport map[string]http.Handler

func (m memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h, ok := m[r.URL.Host]
	if !ok {
		return nil, fmt.Errorf("no in-memory fake at %s", r.URL.Host)
	}
	req := r.Clone(r.Context())
	if req.Body == nil {
		req.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	req.Body.Close()
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// recording is h after f records the request.
func (f *fake) recording(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, r.Clone(context.Background()))
		f.bodies = append(f.bodies, string(body))
		f.at = append(f.at, time.Now())
		f.mu.Unlock()
		h(w, r)
	})
}

func (f *fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fake) request(i int) *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[i]
}

func (f *fake) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.at...)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func unavailable(w http.ResponseWriter, retryAfter string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeJSON(w, http.StatusServiceUnavailable, `{"error":{"code":"unavailable","message":"no leader"}}`)
}

const policyJSON = `{"access_ttl":"15m0s","refresh_ttl":"22m30s","refresh_ttl_follows_access":true,"absolute_ttl":"720h0m0s","idle_timeout":"0s","sliding_refresh":false,"remember_me_ttl":"720h0m0s","max_sessions_per_user":0,"app_max_sessions":{},"on_session_limit":"deny","lockout":{"max_failures":5,"window":"15m0s","duration":"15m0s"},"force_logout_on_password_change":true,"refresh_reuse_grace":"0s"}`

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string { return "http://" + testkit.FreeAddr(t) }

func newClient(t *testing.T, addrs []string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(addrs, append([]client.Option{client.WithAPIKey("key-0123456789abcdef")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The retry tests run in a synctest bubble against in-memory fakes: the
// waits they check take no real time and are measured exactly.

func TestRetry_503ThenSuccessWaitsRetryAfter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		f := newMemFake("node", func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				unavailable(w, "1")
				return
			}
			writeJSON(w, http.StatusOK, policyJSON)
		})
		c := newClient(t, []string{f.URL}, inMemory(f), client.WithRetry(3, time.Millisecond))
		p, err := c.Policy(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.count() != 2 || p.AccessTTL != 15*time.Minute {
			t.Fatalf("requests %d, policy %+v", f.count(), p)
		}
		// The backoff (at most 1ms) is shorter: Retry-After decides.
		if at := f.times(); at[1].Sub(at[0]) != time.Second {
			t.Errorf("retried after %s; Retry-After asked for 1s", at[1].Sub(at[0]))
		}
		id0, id1 := f.request(0).Header.Get("X-Request-Id"), f.request(1).Header.Get("X-Request-Id")
		if id0 == "" || id0 != id1 {
			t.Errorf("request ids %q and %q: a call's retries share one", id0, id1)
		}
		if _, err := c.Policy(client.WithRequestID(context.Background(), "my-call-1")); err != nil {
			t.Fatal(err)
		}
		if id := f.request(2).Header.Get("X-Request-Id"); id != "my-call-1" {
			t.Errorf("request id %q", id)
		}
	})
}

func TestRetry_BackoffDoublesWithJitter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newMemFake("node", func(w http.ResponseWriter, r *http.Request) { unavailable(w, "") })
		base := 40 * time.Millisecond
		c := newClient(t, []string{f.URL}, inMemory(f), client.WithRetry(3, base))
		_, err := c.Policy(context.Background())
		if !client.IsUnavailable(err) {
			t.Fatalf("err = %v, want unavailable", err)
		}
		at := f.times()
		if len(at) != 4 {
			t.Fatalf("%d attempts, want 1 + 3 retries", len(at))
		}
		for i := 1; i < len(at); i++ {
			full := base << (i - 1)
			if gap := at[i].Sub(at[i-1]); gap < full/2 || gap > full {
				t.Errorf("wait %d was %s, want between %s and %s (a random half of it taken off)", i, gap, full/2, full)
			}
		}
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.Status != 503 || apiErr.Message != "no leader" {
			t.Errorf("error %#v", err)
		}
	})
}

func TestRetry_DeadlineBeforeRetryAfterGivesUpAtOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newMemFake("node", func(w http.ResponseWriter, r *http.Request) { unavailable(w, "30") })
		c := newClient(t, []string{f.URL}, inMemory(f))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Policy(ctx)
		if !client.IsUnavailable(err) || client.RetryAfter(err) != 30*time.Second {
			t.Fatalf("err = %v (retry after %s)", err, client.RetryAfter(err))
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("waited %s for a retry that could not happen before the deadline", waited)
		}
		if f.count() != 1 {
			t.Errorf("%d requests, want 1", f.count())
		}
	})
}

func TestRetry_WhichWritesAreRepeated(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		mode  client.WriteRetry
		call  func(*client.Client) error
		tries int
	}{
		{"create repeated by default (it carries an Idempotency-Key)", client.RetryIdempotentWrites, func(c *client.Client) error {
			_, err := c.CreateSession(context.Background(), client.CreateSessionRequest{UserID: "u"})
			return err
		}, 3},
		{"refresh repeated by default", client.RetryIdempotentWrites, func(c *client.Client) error {
			_, err := c.Refresh(context.Background(), "sr_x")
			return err
		}, 3},
		{"create not repeated with RetryNoWrites", client.RetryNoWrites, func(c *client.Client) error {
			_, err := c.CreateSession(context.Background(), client.CreateSessionRequest{UserID: "u"})
			return err
		}, 1},
		{"create repeated with RetryAllWrites", client.RetryAllWrites, func(c *client.Client) error {
			_, err := c.CreateSession(context.Background(), client.CreateSessionRequest{UserID: "u"})
			return err
		}, 3},
		{"revoke repeated by default", client.RetryIdempotentWrites, func(c *client.Client) error {
			_, err := c.RevokeSession(context.Background(), "s1")
			return err
		}, 3},
		{"revoke not repeated with RetryNoWrites", client.RetryNoWrites, func(c *client.Client) error {
			_, err := c.RevokeSession(context.Background(), "s1")
			return err
		}, 1},
		{"reads repeated with RetryNoWrites", client.RetryNoWrites, func(c *client.Client) error {
			_, err := c.Session(context.Background(), "s1")
			return err
		}, 3},
		{"introspection is a read", client.RetryNoWrites, func(c *client.Client) error {
			_, err := c.Introspect(context.Background(), "sa_x")
			return err
		}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var keysMu sync.Mutex
			keys := map[string]bool{}
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet {
					keysMu.Lock()
					keys[r.Header.Get("Idempotency-Key")] = true
					keysMu.Unlock()
				}
				unavailable(w, "")
			})
			c := newClient(t, []string{f.URL}, client.WithRetry(2, time.Millisecond), client.WithWriteRetry(tc.mode))
			if err := tc.call(c); !client.IsUnavailable(err) {
				t.Fatalf("err = %v", err)
			}
			if f.count() != tc.tries {
				t.Errorf("%d requests, want %d", f.count(), tc.tries)
			}
			// Every attempt of one write carries the same key.
			keysMu.Lock()
			defer keysMu.Unlock()
			isWrite := strings.HasPrefix(tc.name, "create") || strings.HasPrefix(tc.name, "refresh") || strings.HasPrefix(tc.name, "revoke")
			if len(keys) > 1 || (isWrite && keys[""]) {
				t.Errorf("the attempts of one write sent Idempotency-Keys %v, want one and the same", keys)
			}
		})
	}
}

func TestRetry_BadRequestIsNotRetried(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusBadRequest, `{"error":{"code":"bad_request","message":"user_id must be 1–128 chars"}}`)
	})
	c := newClient(t, []string{f.URL, f.URL}, client.WithRetry(3, time.Millisecond))
	_, err := c.Session(context.Background(), "x")
	if !client.IsBadRequest(err) || f.count() != 1 {
		t.Fatalf("err = %v after %d requests", err, f.count())
	}
}

func TestRetry_RateLimitedIsRetriedEvenForCreates(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			writeJSON(w, http.StatusTooManyRequests, `{"error":{"code":"rate_limited","message":"slow down"}}`)
			return
		}
		writeJSON(w, http.StatusCreated, `{"session_id":"s1","user_id":"u","token_type":"Bearer","index":7}`)
	})
	c := newClient(t, []string{f.URL}, client.WithRetry(2, time.Millisecond))
	tok, err := c.CreateSession(context.Background(), client.CreateSessionRequest{UserID: "u"})
	if err != nil || tok.SessionID != "s1" || tok.Index != 7 {
		t.Fatalf("tokens %+v, err %v", tok, err)
	}
}

func TestFailover_DeadAddressIsSkippedAndTheLiveOneKept(t *testing.T) {
	t.Parallel()
	b := newFake(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, policyJSON) })
	cNode := newFake(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, policyJSON) })
	c := newClient(t, []string{deadAddr(t), b.URL, cNode.URL}, client.WithRetry(0, time.Millisecond))
	for range 3 {
		if _, err := c.Policy(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if b.count() != 3 || cNode.count() != 0 {
		t.Errorf("second node got %d requests, third %d: want all on the first live one", b.count(), cNode.count())
	}
	if c.Current() != b.URL {
		t.Errorf("current %s, want %s", c.Current(), b.URL)
	}
}

func TestFailover_CreateNeverSentIsTriedOnTheNextNode(t *testing.T) {
	t.Parallel()
	b := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusCreated, `{"session_id":"s1","user_id":"u","index":3}`)
	})
	// No retries, no write retries: a dial failure still moves on.
	c := newClient(t, []string{deadAddr(t), b.URL}, client.WithRetry(0, time.Millisecond), client.WithWriteRetry(client.RetryNoWrites))
	if _, err := c.CreateSession(context.Background(), client.CreateSessionRequest{UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	if b.count() != 1 {
		t.Errorf("live node got %d requests", b.count())
	}
}

func TestFailover_503MovesToTheNextNodeWithoutWaiting(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a := newMemFake("a", func(w http.ResponseWriter, r *http.Request) { unavailable(w, "5") })
		b := newMemFake("b", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, policyJSON) })
		c := newClient(t, []string{a.URL, b.URL}, inMemory(a, b), client.WithRetry(1, time.Millisecond))
		start := time.Now()
		if _, err := c.Policy(context.Background()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("took %s: the other node should be asked at once", took)
		}
		if a.count() != 1 || b.count() != 1 || c.Current() != b.URL {
			t.Errorf("a %d, b %d, current %s", a.count(), b.count(), c.Current())
		}
	})
}

func TestFailover_AllDeadReportsTheConnectionError(t *testing.T) {
	t.Parallel()
	c := newClient(t, []string{deadAddr(t), deadAddr(t)}, client.WithRetry(1, time.Millisecond))
	_, err := c.Policy(context.Background())
	var op *net.OpError
	if err == nil || !errors.As(err, &op) {
		t.Fatalf("err = %v, want the dial error", err)
	}
	if _, ok := client.AsError(err); ok {
		t.Errorf("a connection failure is not an API error: %v", err)
	}
}

func TestReadYourWrites_MinIndexFollowsTheHighestIndexSeen(t *testing.T) {
	t.Parallel()
	var index atomic.Uint64
	index.Store(42)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Sessiond-Index", fmt.Sprint(index.Load()))
		switch r.Method {
		case http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, 200, policyJSON)
		}
	})
	c := newClient(t, []string{f.URL})
	ctx := context.Background()
	if _, err := c.Policy(ctx); err != nil { // first read: no index known yet
		t.Fatal(err)
	}
	if got := f.request(0).Header.Get("X-Sessiond-Min-Index"); got != "" {
		t.Errorf("first read sent min index %q", got)
	}
	index.Store(50)
	idx, err := c.RevokeSession(ctx, "s1")
	if err != nil || idx != 50 {
		t.Fatalf("revoke index %d, err %v", idx, err)
	}
	if got := f.request(1).Header.Get("X-Sessiond-Min-Index"); got != "" {
		t.Errorf("a write sent min index %q", got)
	}
	index.Store(45) // a lagging node answers: the index must not go back
	if _, err := c.Policy(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.request(2).Header.Get("X-Sessiond-Min-Index"); got != "50" {
		t.Errorf("read after write sent min index %q, want 50", got)
	}
	if c.LastIndex() != 50 {
		t.Errorf("LastIndex %d, want 50", c.LastIndex())
	}

	off := newClient(t, []string{f.URL}, client.WithReadYourWrites(false), client.WithMinIndex(60))
	if _, err := off.Policy(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.request(3).Header.Get("X-Sessiond-Min-Index"); got != "" {
		t.Errorf("read-your-writes off still sent %q", got)
	}
	seeded := newClient(t, []string{f.URL}, client.WithMinIndex(60))
	if _, err := seeded.Policy(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.request(4).Header.Get("X-Sessiond-Min-Index"); got != "60" {
		t.Errorf("seeded client sent %q, want 60", got)
	}
}

func TestLeaderRead_AsksForConsistencyLeader(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, policyJSON) })
	c := newClient(t, []string{f.URL})
	if _, err := c.Policy(client.LeaderRead(context.Background())); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Policy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if q := f.request(0).URL.Query().Get("consistency"); q != "leader" {
		t.Errorf("leader read sent consistency=%q", q)
	}
	if q := f.request(1).URL.RawQuery; q != "" {
		t.Errorf("plain read sent query %q", q)
	}
}

func TestErrors_DecodedWithCodesAndDetails(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status int
		header map[string]string
		body   string
		is     error
		pred   func(error) bool
		check  func(t *testing.T, e *client.Error)
	}{
		{"unauthenticated", 401, nil, `{"error":{"code":"unauthenticated","message":"missing or invalid credentials"}}`,
			client.ErrUnauthenticated, client.IsUnauthenticated, nil},
		{"not found", 404, nil, `{"error":{"code":"not_found","message":"no such session"}}`,
			client.ErrNotFound, client.IsNotFound, nil},
		{"session limit with sessions", 409, nil,
			`{"error":{"code":"session_limit_exceeded","message":"session limit reached","sessions":[{"session_id":"s1","user_id":"u","created_at":"2025-01-02T03:04:05.000Z","status":"active"}]}}`,
			client.ErrSessionLimit, client.IsSessionLimit, func(t *testing.T, e *client.Error) {
				if len(e.Sessions) != 1 || e.Sessions[0].SessionID != "s1" || e.Sessions[0].CreatedAt.Year() != 2025 {
					t.Errorf("sessions %+v", e.Sessions)
				}
			}},
		{"email conflict", 409, nil, `{"error":{"code":"conflict","message":"email already used by another user"}}`,
			client.ErrConflict, client.IsConflict, nil},
		{"locked with Retry-After", 423, map[string]string{"Retry-After": "7"}, `{"error":{"code":"account_locked","message":"too many failed logins"}}`,
			client.ErrLocked, client.IsLocked, func(t *testing.T, e *client.Error) {
				if e.RetryAfter != 7*time.Second {
					t.Errorf("RetryAfter %s", e.RetryAfter)
				}
			}},
		{"a proxy's page", 502, nil, `<html>bad gateway</html>`,
			client.ErrUnavailable, client.IsUnavailable, func(t *testing.T, e *client.Error) {
				if e.Message != "Bad Gateway" {
					t.Errorf("message %q", e.Message)
				}
			}},
		{"payload too large", 413, nil, `{"error":{"code":"payload_too_large","message":"request body is larger than 64 KiB"}}`,
			client.ErrPayloadTooLarge, func(err error) bool { return errors.Is(err, client.ErrPayloadTooLarge) }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id"))
				writeJSON(w, tc.status, tc.body)
			})
			c := newClient(t, []string{f.URL}, client.WithRetry(0, time.Millisecond), client.WithWriteRetry(client.RetryNoWrites))
			_, err := c.Login(context.Background(), client.LoginRequest{UserID: "u", Password: "password1"})
			if !errors.Is(err, tc.is) || !tc.pred(err) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			e, ok := client.AsError(err)
			if !ok || e.Status != tc.status {
				t.Fatalf("not an *Error with status %d: %#v", tc.status, err)
			}
			if e.RequestID == "" || e.RequestID != f.request(0).Header.Get("X-Request-Id") {
				t.Errorf("request id %q", e.RequestID)
			}
			if errors.Is(err, client.ErrInternal) {
				t.Errorf("matches an unrelated sentinel")
			}
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

func TestRequests_CarryKeysTokensAndEscapedIDs(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"sessions":[]}`)
	})
	c := newClient(t, []string{f.URL + "/prefix/"})
	ctx := context.Background()
	if _, err := c.UserSessions(ctx, "a/b@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.MySessions(ctx, "sa_token"); err != nil {
		t.Fatal(err)
	}
	r0, r1 := f.request(0), f.request(1)
	if r0.URL.EscapedPath() != "/prefix/v1/users/a%2Fb@example.com/sessions" {
		t.Errorf("path %q", r0.URL.EscapedPath())
	}
	if r0.Header.Get("X-API-Key") != "key-0123456789abcdef" || r0.Header.Get("Authorization") != "" {
		t.Errorf("admin call headers %v", r0.Header)
	}
	if r1.Header.Get("Authorization") != "Bearer sa_token" || r1.Header.Get("X-API-Key") != "" {
		t.Errorf("session call headers %v", r1.Header)
	}
}

func TestPolicy_JSONRoundTripsTheWireForm(t *testing.T) {
	t.Parallel()
	var p client.Policy
	if err := p.UnmarshalJSON([]byte(policyJSON)); err != nil {
		t.Fatal(err)
	}
	if p.RefreshTTL != 22*time.Minute+30*time.Second || !p.RefreshTTLFollowsAccess || p.Lockout.Window != 15*time.Minute {
		t.Fatalf("decoded %+v", p)
	}
	out, err := p.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != policyJSON {
		t.Errorf("encoded\n%s\nwant\n%s", out, policyJSON)
	}
}

func TestNew_RejectsBadAddresses(t *testing.T) {
	t.Parallel()
	for _, addrs := range [][]string{nil, {""}, {"ftp://x"}, {"http://x?y=1"}} {
		if _, err := client.New(addrs); err == nil {
			t.Errorf("New(%q) accepted", addrs)
		}
	}
	c, err := client.New([]string{"127.0.0.1:8080", " https://h:1/p/ "})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Addrs(), ","); got != "http://127.0.0.1:8080,https://h:1/p" {
		t.Errorf("addrs %s", got)
	}
}

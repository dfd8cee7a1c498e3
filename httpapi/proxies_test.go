package httpapi_test

// Client addresses behind proxies (--trusted-proxies), through what uses
// them: the login rate limit and device.ip. Requests are served in process
// by a server over a real node, so that each can come from any TCP peer;
// the loopback tests use real sockets on 127.0.0.1.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sessiond/sessiond/httpapi"
)

// peerAPI serves requests from any peer address.
type peerAPI struct {
	*testAPI
	handler http.Handler
}

// startPeerAPI starts a node and its API (startServer) trusting the given
// --trusted-proxies entries, with a login rate of burst logins and then one
// every 100 s, lockout off and a user alice. from sends requests to a second
// server with the same configuration over the same node.
func startPeerAPI(t *testing.T, trusted []string, burst int) *peerAPI {
	t.Helper()
	ranges, err := httpapi.ParseTrustedProxies(trusted)
	if err != nil {
		t.Fatalf("--trusted-proxies %q: %v", trusted, err)
	}
	var cfg httpapi.Config
	a := startServer(t, serverSetup{API: func(c *httpapi.Config) {
		c.TrustedProxies = ranges
		c.LoginRate = httpapi.LoginRate{PerSecond: 0.01, Burst: burst}
		cfg = *c
	}})
	api, err := httpapi.New(cfg)
	if err != nil {
		t.Fatalf("new API: %v", err)
	}
	a.putPolicy(t, map[string]any{"lockout": map[string]any{"max_failures": 0}})
	a.putUser(t, "alice", "", alicePassword)
	return &peerAPI{testAPI: a, handler: api.Handler()}
}

// from sends a JSON request from peer (host:port) with the given header
// lines, name then value (a name may repeat: several lines).
func (p *peerAPI) from(t testing.TB, peer, method, path string, body any, hdrs ...string) response {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(data))
	req.RemoteAddr = peer
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Add(hdrs[i], hdrs[i+1])
	}
	rec := httptest.NewRecorder()
	p.handler.ServeHTTP(rec, req)
	res := rec.Result()
	got, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: got}
}

// limited sends a login with a wrong password from peer: true when it is
// refused with 429, false when it is answered (401).
func (p *peerAPI) limited(t testing.TB, what, peer string, hdrs ...string) bool {
	t.Helper()
	r := p.from(t, peer, http.MethodPost, "/v1/login", map[string]any{"user_id": "alice", "password": "wrong password"}, hdrs...)
	switch r.Status {
	case http.StatusTooManyRequests:
		return true
	case http.StatusUnauthorized:
		return false
	}
	t.Fatalf("%s: %s, want 401 or 429", what, r)
	return false
}

// deviceIP logs alice in from peer and returns the new session's device.ip.
func (p *peerAPI) deviceIP(t testing.TB, what, peer string, hdrs ...string) string {
	t.Helper()
	r := p.from(t, peer, http.MethodPost, "/v1/login", map[string]any{"user_id": "alice", "password": alicePassword}, hdrs...)
	expectStatus(t, what, r, http.StatusCreated)
	return p.getSession(t, decode[tokenResponse](t, r).SessionID).Device.IP
}

const (
	proxy1 = "10.0.0.1:41000"
	proxy2 = "10.0.0.2:41000"
)

// Two clients behind one trusted proxy are two addresses to the rate limit;
// one client is one address whichever trusted proxy it comes through and
// whichever header carries it.
func TestTrustedProxies_ClientsBehindOneProxyGetTheirOwnLoginLimit(t *testing.T) {
	t.Parallel()
	p := startPeerAPI(t, []string{"10.0.0.0/8"}, 2)
	for i := range 2 {
		if p.limited(t, "client A", proxy1, "X-Forwarded-For", "203.0.113.7") {
			t.Fatalf("client A's login %d was limited within the burst of 2", i+1)
		}
	}
	if !p.limited(t, "client A", proxy1, "X-Forwarded-For", "203.0.113.7") {
		t.Fatal("client A's third login was not limited")
	}
	for i := range 2 {
		if p.limited(t, "client B", proxy1, "X-Forwarded-For", "198.51.100.9") {
			t.Fatalf("client B's login %d behind the same proxy was limited: it shares client A's bucket", i+1)
		}
	}
	if p.limited(t, "the proxy itself", proxy1) {
		t.Error("a login from the proxy itself (no forwarding header) was limited")
	}
	for _, c := range []struct {
		what string
		peer string
		hdrs []string
	}{
		{"client A through another trusted proxy", proxy2, []string{"X-Forwarded-For", "203.0.113.7"}},
		{"client A in Forwarded", proxy1, []string{"Forwarded", `for="203.0.113.7:52000";proto=https`}},
		{"client A behind a second trusted hop", proxy1, []string{"X-Forwarded-For", "203.0.113.7, 10.200.0.1"}},
	} {
		if !p.limited(t, c.what, c.peer, c.hdrs...) {
			t.Errorf("%s (%q) was not limited: client A is over its limit", c.what, c.hdrs)
		}
	}
}

// A client cannot escape the limit by writing forwarding headers: from a
// peer outside --trusted-proxies (even a loopback, link-local or private
// one, which echo would trust by default) they are ignored, and behind a
// trusted proxy the hops left of the one the proxy appended are ignored.
func TestTrustedProxies_ForgedForwardingHeadersDoNotEscapeTheLimit(t *testing.T) {
	t.Parallel()
	p := startPeerAPI(t, []string{"10.0.0.0/8"}, 2)
	for _, c := range []struct {
		what string
		peer string
		// hdrs forges a new client address for attempt i.
		hdrs func(i int) []string
	}{
		{"untrusted public peer, X-Forwarded-For", "203.0.113.50:1000", func(i int) []string {
			return []string{"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i)}
		}},
		{"untrusted private peer, X-Forwarded-For", "192.168.1.1:1000", func(i int) []string {
			return []string{"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i)}
		}},
		{"untrusted unique-local peer, every header", "[fd00::1]:1000", func(i int) []string {
			return []string{"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i), "X-Real-IP", fmt.Sprintf("198.51.100.%d", i),
				"Forwarded", fmt.Sprintf("for=198.51.100.%d", i)}
		}},
		{"untrusted link-local peer, Forwarded", "169.254.0.1:1000", func(i int) []string {
			return []string{"Forwarded", fmt.Sprintf("for=198.51.100.%d", i)}
		}},
		{"trusted proxy, X-Real-IP", proxy1, func(i int) []string {
			// The proxy's own bucket: X-Real-IP is never read.
			return []string{"X-Real-IP", fmt.Sprintf("198.51.100.%d", i)}
		}},
		{"trusted proxy, spoofed left-most X-Forwarded-For hop", proxy1, func(i int) []string {
			return []string{"X-Forwarded-For", fmt.Sprintf("6.6.6.%d, 203.0.113.7", i)}
		}},
		{"trusted proxy, spoofed left-most Forwarded element", proxy2, func(i int) []string {
			return []string{"Forwarded", fmt.Sprintf("for=6.6.6.%d, for=203.0.113.8", i)}
		}},
		{"trusted proxy, a LAN client spoofing the hop left of its own", proxy2, func(i int) []string {
			return []string{"X-Forwarded-For", fmt.Sprintf("6.6.6.%d, 192.168.1.5", i)}
		}},
	} {
		for i := range 2 {
			if p.limited(t, c.what, c.peer, c.hdrs(i)...) {
				t.Fatalf("%s: login %d was limited within the burst of 2", c.what, i+1)
			}
		}
		if !p.limited(t, c.what, c.peer, c.hdrs(2)...) {
			t.Errorf("%s: the third login, forging %q, escaped the limit", c.what, c.hdrs(2))
		}
	}
}

// device.ip, when the login leaves it out, is the client address: the
// right-most hop not in --trusted-proxies, read only from a trusted peer.
func TestTrustedProxies_DeviceIPIsTheRightmostUntrustedHop(t *testing.T) {
	t.Parallel()
	p := startPeerAPI(t, []string{"10.0.0.0/8", "192.0.2.0/24", "2001:db8:ffff::/48"}, 1000)
	for _, c := range []struct {
		what string
		peer string
		hdrs []string
		want string
	}{
		{"X-Forwarded-For from a trusted proxy", proxy1, []string{"X-Forwarded-For", "203.0.113.7"}, "203.0.113.7"},
		{"spoofed left-most hop", proxy1, []string{"X-Forwarded-For", "6.6.6.6, 203.0.113.7"}, "203.0.113.7"},
		{"several trusted hops", proxy1, []string{"X-Forwarded-For", "6.6.6.6, 203.0.113.7, 192.0.2.5, 10.1.2.3"}, "203.0.113.7"},
		{"several header lines", proxy1, []string{"X-Forwarded-For", "6.6.6.6", "X-Forwarded-For", "203.0.113.7, 192.0.2.5"}, "203.0.113.7"},
		{"IPv6 proxy and client", "[2001:db8:ffff::1]:41000", []string{"X-Forwarded-For", "2001:db8::7"}, "2001:db8::7"},
		{"Forwarded", proxy1, []string{"Forwarded", `for=6.6.6.6, for="[2001:db8::7]:4711";proto=https, for=192.0.2.5`}, "2001:db8::7"},
		{"X-Forwarded-For wins over Forwarded", proxy1, []string{"Forwarded", "for=198.51.100.1", "X-Forwarded-For", "203.0.113.7"}, "203.0.113.7"},
		{"Forwarded for=unknown: the proxy", proxy1, []string{"Forwarded", "for=203.0.113.7, for=unknown"}, "10.0.0.1"},
		{"Forwarded obfuscated: the proxy", proxy1, []string{"Forwarded", `for="_hidden"`}, "10.0.0.1"},
		{"no header: the proxy", proxy1, nil, "10.0.0.1"},
		{"a LAN client behind the proxy", proxy1, []string{"X-Forwarded-For", "6.6.6.6, 192.168.1.5"}, "192.168.1.5"},
		{"untrusted peer", "198.51.100.1:5000", []string{"X-Forwarded-For", "203.0.113.7"}, "198.51.100.1"},
		{"untrusted private peer", "192.168.1.1:5000", []string{"X-Forwarded-For", "203.0.113.7"}, "192.168.1.1"},
	} {
		if got := p.deviceIP(t, c.what, c.peer, c.hdrs...); got != c.want {
			t.Errorf("%s: peer %s, headers %q: device.ip %q, want %q", c.what, c.peer, c.hdrs, got, c.want)
		}
	}
}

// Without --trusted-proxies nothing is trusted, loopback included; with it,
// exactly the given ranges are: loopback only when listed. Real sockets
// from 127.0.0.1.
func TestTrustedProxies_LoopbackIsTrustedOnlyWhenListed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		trusted []string
		want    string
	}{
		{nil, "127.0.0.1"},
		{[]string{"10.0.0.0/8", "::1"}, "127.0.0.1"},
		{[]string{"127.0.0.1"}, "203.0.113.7"},
	} {
		p := startPeerAPI(t, c.trusted, 2)
		login := func(pw string, hdrs ...string) response {
			return p.login(t, map[string]any{"user_id": "alice", "password": pw}, hdrs...)
		}
		r := login(alicePassword, "X-Forwarded-For", "203.0.113.7", "X-Real-IP", "203.0.113.8", "Forwarded", "for=203.0.113.9")
		expectStatus(t, "login", r, http.StatusCreated)
		if got := p.getSession(t, decode[tokenResponse](t, r).SessionID).Device.IP; got != c.want {
			t.Errorf("--trusted-proxies %q: a login from 127.0.0.1 forwarding 203.0.113.7 has device.ip %q, want %q", c.trusted, got, c.want)
		}
		if c.want != "127.0.0.1" {
			continue
		}
		// The rate limit counts 127.0.0.1 whatever the headers claim.
		expectStatus(t, "second login", login("wrong password", "X-Forwarded-For", "198.51.100.2"), http.StatusUnauthorized)
		expectError(t, "third login, forging another X-Forwarded-For", login("wrong password", "X-Forwarded-For", "198.51.100.3"),
			http.StatusTooManyRequests, "rate_limited")
		expectError(t, "fourth login, forging X-Real-IP and Forwarded",
			login("wrong password", "X-Real-IP", "198.51.100.4", "Forwarded", "for=198.51.100.4"), http.StatusTooManyRequests, "rate_limited")
	}
}

package httpapi

import (
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/node"
)

// The client-address rules on their own (clientaddr.go), request by
// request; proxies_test.go checks them through the login rate limit and
// device.ip.

// clientAddrOf is the client address of a request from remote (host:port)
// with the given header lines, name then value (a name may repeat: several
// lines).
func clientAddrOf(t *testing.T, trusted []string, remote string, hdrs ...string) string {
	t.Helper()
	ranges, err := ParseTrustedProxies(trusted)
	if err != nil {
		t.Fatalf("ParseTrustedProxies(%q): %v", trusted, err)
	}
	req := httptest.NewRequest("POST", "/v1/login", nil)
	req.RemoteAddr = remote
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Add(hdrs[i], hdrs[i+1])
	}
	return clientAddress(ranges)(req)
}

func TestClientAddress_TrustRules(t *testing.T) {
	t.Parallel()
	lan := []string{"10.0.0.0/8"}
	two := []string{"10.0.0.0/8", "192.0.2.0/24"}
	for _, c := range []struct {
		name    string
		trusted []string
		remote  string
		hdrs    []string
		want    string
	}{
		// Nothing trusted: the peer, whatever the headers say.
		{"none: peer", nil, "203.0.113.1:5000", nil, "203.0.113.1"},
		{"none: XFF ignored", nil, "203.0.113.1:5000", []string{"X-Forwarded-For", "198.51.100.1"}, "203.0.113.1"},
		{"none: loopback's XFF ignored", nil, "127.0.0.1:5000", []string{"X-Forwarded-For", "198.51.100.1"}, "127.0.0.1"},
		{"none: private peer's XFF ignored", nil, "10.0.0.1:5000", []string{"X-Forwarded-For", "198.51.100.1"}, "10.0.0.1"},
		{"none: X-Real-IP ignored", nil, "127.0.0.1:5000", []string{"X-Real-IP", "198.51.100.1"}, "127.0.0.1"},
		{"none: Forwarded ignored", nil, "127.0.0.1:5000", []string{"Forwarded", "for=198.51.100.1"}, "127.0.0.1"},

		// A peer outside the ranges: its headers are ignored, even when it
		// is loopback, link-local or private (echo trusts those by default).
		{"untrusted public peer", lan, "203.0.113.1:5000", []string{"X-Forwarded-For", "198.51.100.1"}, "203.0.113.1"},
		{"untrusted loopback", lan, "127.0.0.1:5000", []string{"X-Forwarded-For", "198.51.100.1"}, "127.0.0.1"},
		{"untrusted IPv6 loopback", lan, "[::1]:5000", []string{"X-Forwarded-For", "198.51.100.1"}, "::1"},
		{"untrusted private", lan, "192.168.1.1:5000", []string{"X-Forwarded-For", "198.51.100.1"}, "192.168.1.1"},
		{"untrusted unique local", lan, "[fd00::1]:5000", []string{"X-Forwarded-For", "198.51.100.1"}, "fd00::1"},
		{"untrusted link-local", lan, "169.254.1.1:5000", []string{"X-Forwarded-For", "198.51.100.1"}, "169.254.1.1"},
		{"untrusted peer's Forwarded", lan, "192.168.1.1:5000", []string{"Forwarded", "for=198.51.100.1"}, "192.168.1.1"},

		// A trusted peer: X-Forwarded-For, right-most untrusted hop.
		{"trusted: XFF", lan, "10.0.0.1:5000", []string{"X-Forwarded-For", "203.0.113.7"}, "203.0.113.7"},
		{"trusted: no header", lan, "10.0.0.1:5000", nil, "10.0.0.1"},
		{"trusted: X-Real-IP never read", lan, "10.0.0.1:5000", []string{"X-Real-IP", "203.0.113.7"}, "10.0.0.1"},
		{"trusted: spoofed left-most hop", lan, "10.0.0.1:5000", []string{"X-Forwarded-For", "6.6.6.6, 203.0.113.7"}, "203.0.113.7"},
		{"trusted: spoofed trusted-looking hop", lan, "10.0.0.1:5000", []string{"X-Forwarded-For", "10.9.9.9, 203.0.113.7"}, "203.0.113.7"},
		{"trusted hops skipped right to left", two, "10.0.0.1:5000",
			[]string{"X-Forwarded-For", "6.6.6.6, 203.0.113.7, 192.0.2.5, 10.1.2.3"}, "203.0.113.7"},
		{"XFF over several lines", two, "10.0.0.1:5000",
			[]string{"X-Forwarded-For", "6.6.6.6", "X-Forwarded-For", "203.0.113.7, 192.0.2.5"}, "203.0.113.7"},
		{"an inner trusted proxy's hop is skipped", lan, "10.0.0.1:5000",
			[]string{"X-Forwarded-For", "203.0.113.7, 10.0.0.2"}, "203.0.113.7"},
		{"a private hop outside the ranges is the client", lan, "10.0.0.1:5000",
			[]string{"X-Forwarded-For", "6.6.6.6, 192.168.1.5"}, "192.168.1.5"},
		{"a loopback hop outside the ranges is the client", lan, "10.0.0.1:5000",
			[]string{"X-Forwarded-For", "6.6.6.6, 127.0.0.1"}, "127.0.0.1"},
		{"every hop trusted: the left-most", lan, "10.0.0.1:5000", []string{"X-Forwarded-For", "10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"garbage to the left is never reached", lan, "10.0.0.1:5000", []string{"X-Forwarded-For", "not an address, 203.0.113.7"}, "203.0.113.7"},
		{"an unreadable hop stops the walk at the peer", lan, "10.0.0.1:5000", []string{"X-Forwarded-For", "203.0.113.7, unknown"}, "10.0.0.1"},
		{"a hop with a port is unreadable", lan, "10.0.0.1:5000", []string{"X-Forwarded-For", "203.0.113.7:443"}, "10.0.0.1"},
		{"empty XFF", lan, "10.0.0.1:5000", []string{"X-Forwarded-For", ""}, "10.0.0.1"},
		{"IPv6 hop", []string{"2001:db8:ffff::/48"}, "[2001:db8:ffff::1]:5000", []string{"X-Forwarded-For", "2001:DB8::7"}, "2001:db8::7"},
		{"bracketed IPv6 hop", lan, "10.0.0.1:5000", []string{"X-Forwarded-For", "[2001:db8::7]"}, "2001:db8::7"},
		{"IPv4-mapped hop", lan, "10.0.0.1:5000", []string{"X-Forwarded-For", "::ffff:203.0.113.7"}, "203.0.113.7"},
		{"a bare IP is a /32", []string{"10.0.0.1"}, "10.0.0.2:5000", []string{"X-Forwarded-For", "203.0.113.7"}, "10.0.0.2"},
		{"a bare IP trusts that peer", []string{"10.0.0.1"}, "10.0.0.1:5000", []string{"X-Forwarded-For", "203.0.113.7"}, "203.0.113.7"},
		{"listed loopback is trusted", []string{"127.0.0.1"}, "127.0.0.1:5000", []string{"X-Forwarded-For", "203.0.113.7"}, "203.0.113.7"},

		// Forwarded, only without X-Forwarded-For.
		{"Forwarded", lan, "10.0.0.1:5000", []string{"Forwarded", "for=203.0.113.7"}, "203.0.113.7"},
		{"XFF wins over Forwarded", lan, "10.0.0.1:5000",
			[]string{"X-Forwarded-For", "198.51.100.1", "Forwarded", "for=203.0.113.7"}, "198.51.100.1"},
		{"Forwarded: spoofed left-most element", lan, "10.0.0.1:5000",
			[]string{"Forwarded", "for=6.6.6.6, for=203.0.113.7;proto=https"}, "203.0.113.7"},
		{"Forwarded: trusted hops skipped", two, "10.0.0.1:5000",
			[]string{"Forwarded", `for=6.6.6.6, for="203.0.113.7:4711";proto=https, for=192.0.2.5;by=10.0.0.1`}, "203.0.113.7"},
		{"Forwarded: over several lines", two, "10.0.0.1:5000",
			[]string{"Forwarded", "for=6.6.6.6", "Forwarded", "for=203.0.113.7, for=192.0.2.5"}, "203.0.113.7"},
		{"Forwarded: a bad line to the left is never reached", lan, "10.0.0.1:5000",
			[]string{"Forwarded", `for="6.6.6.6`, "Forwarded", "for=203.0.113.7"}, "203.0.113.7"},
		{"Forwarded: a bad line swallowing the proxy's element", lan, "10.0.0.1:5000",
			[]string{"Forwarded", `for="6.6.6.6, for=203.0.113.7`}, "10.0.0.1"},
		{"Forwarded: IPv6 in brackets with port", lan, "10.0.0.1:5000",
			[]string{"Forwarded", `For="[2001:db8:cafe::17]:4711"`}, "2001:db8:cafe::17"},
		{"Forwarded: a private element outside the ranges is the client", lan, "10.0.0.1:5000",
			[]string{"Forwarded", "for=6.6.6.6, for=192.168.1.5"}, "192.168.1.5"},
		{"Forwarded: unknown", lan, "10.0.0.1:5000", []string{"Forwarded", "for=203.0.113.7, for=unknown"}, "10.0.0.1"},
		{"Forwarded: obfuscated", lan, "10.0.0.1:5000", []string{"Forwarded", "for=203.0.113.7, for=_hidden"}, "10.0.0.1"},
		{"Forwarded: no for=", lan, "10.0.0.1:5000", []string{"Forwarded", "for=203.0.113.7, proto=https"}, "10.0.0.1"},
		{"Forwarded: empty", lan, "10.0.0.1:5000", []string{"Forwarded", ""}, "10.0.0.1"},
	} {
		if got := clientAddrOf(t, c.trusted, c.remote, c.hdrs...); got != c.want {
			t.Errorf("%s: trusted %q, peer %s, headers %q: client %q, want %q", c.name, c.trusted, c.remote, c.hdrs, got, c.want)
		}
	}
}

func TestForwardedFor_ReadsRFC7239(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		lines []string
		want  []string // "" is a hop that names no address
	}{
		{[]string{"for=192.0.2.60;proto=http;by=203.0.113.43"}, []string{"192.0.2.60"}},
		{[]string{"for=192.0.2.43, for=198.51.100.17"}, []string{"192.0.2.43", "198.51.100.17"}},
		{[]string{`for="_gazonk"`}, []string{""}},
		{[]string{`For="[2001:db8:cafe::17]:4711"`}, []string{"2001:db8:cafe::17"}},
		{[]string{`for="[2001:db8::1]"`}, []string{"2001:db8::1"}},
		{[]string{`for=[2001:db8::1]`}, []string{"2001:db8::1"}},   // unquoted, leniently
		{[]string{`for=192.0.2.1:8080`}, []string{"192.0.2.1"}},    // unquoted, leniently
		{[]string{`for="192.0.2.1:_p0rt"`}, []string{"192.0.2.1"}}, // obfuscated port
		{[]string{`for="\1\9\2.0.2.1"`}, []string{"192.0.2.1"}},    // quoted pairs
		{[]string{"for=unknown"}, []string{""}},                    // RFC 7239 §6.2
		{[]string{"for=UNKNOWN"}, []string{""}},                    // any case
		{[]string{`for="2001:db8::1"`}, []string{""}},              // IPv6 needs brackets
		{[]string{`for="[192.0.2.1]"`}, []string{""}},              // IPv4 takes none
		{[]string{`for="[fe80::1%25eth0]"`}, []string{""}},         // no zones
		{[]string{`for="192.0.2.1:"`}, []string{""}},               // empty port
		{[]string{`for="192.0.2.1:123456"`}, []string{""}},         // not a port
		{[]string{`for="[2001:db8::1]x"`}, []string{""}},           // junk after ]
		{[]string{`for=192.0.2.01`}, []string{""}},                 // not canonical IPv4
		{[]string{"proto=https;by=10.0.0.1"}, []string{""}},        // no for=
		{[]string{"for=192.0.2.1;for=192.0.2.2"}, []string{""}},    // twice
		{[]string{"for=192.0.2.1 ; proto=https ,for=192.0.2.2"}, []string{"192.0.2.1", "192.0.2.2"}},
		{[]string{"for=192.0.2.1;", ",, for=192.0.2.2 ,"}, []string{"192.0.2.1", "192.0.2.2"}}, // empty elements
		{[]string{`by="a,b;c";for=192.0.2.1`}, []string{"192.0.2.1"}},                          // separators inside quotes
		{[]string{`for="192.0.2.1`}, []string{""}},                                             // unterminated: the line is one bad hop
		{[]string{`for="192.0.2.1\`}, []string{""}},                                            //
		{[]string{"for=", "for=192.0.2.2"}, []string{"", "192.0.2.2"}},                         // a bad line does not spoil the next
		{[]string{"for = 192.0.2.1"}, []string{""}},                                            // no spaces around =
		{[]string{`for="192.0.2.1"x`}, []string{""}},
		{[]string{"=192.0.2.1"}, []string{""}},
		{[]string{"for=192.0.2.1 192.0.2.2"}, []string{""}},
		{[]string{"for=\"192.0.2.1\x00\""}, []string{""}},
		{[]string{""}, nil},
	} {
		if got := forwardedFor(c.lines); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Forwarded %q: hops %q, want %q", c.lines, got, c.want)
		}
	}
}

func TestParseTrustedProxies_RangesAndAddresses(t *testing.T) {
	t.Parallel()
	got, err := ParseTrustedProxies([]string{" 10.0.0.0/8", "192.0.2.10", "", "2001:db8::/32 ", "fd00::1", "172.16.5.4/12"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.10/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("fd00::1/128"),
		netip.MustParsePrefix("172.16.0.0/12"), // host bits dropped
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ranges %v, want %v", got, want)
	}
	if got, err := ParseTrustedProxies(nil); err != nil || len(got) != 0 {
		t.Errorf("no entries: %v, %v; want none", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "10.0.0.0/", "10.0.0/8", "example.com", "10.0.0.256", "fe80::1%eth0",
		"::ffff:10.0.0.0/104", "::ffff:10.0.0.1", "10.0.0.1/8/8", "*"} {
		_, err := ParseTrustedProxies([]string{"192.0.2.1", bad})
		if err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("entry %q: error %v, want one naming it", bad, err)
		}
	}
}

func TestConfig_RefusesInvalidTrustedProxies(t *testing.T) {
	t.Parallel()
	cfg := Default()
	cfg.Backend = (*node.Node)(nil)
	cfg.APIKeys = []string{"0123456789abcdef"}
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid ranges refused: %v", err)
	}
	for _, p := range []netip.Prefix{{}, netip.MustParsePrefix("::ffff:10.0.0.0/104")} {
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), p}
		if err := cfg.Validate(); err == nil {
			t.Errorf("range %v accepted", p)
		}
	}
}

// FuzzClientAddress checks, whatever a client writes into the forwarding
// headers, that the address a trusted proxy appends is the one used (or,
// when the client has garbled the proxy's own Forwarded line, the proxy's
// address): a client behind a trusted proxy cannot pick its address.
func FuzzClientAddress(f *testing.F) {
	for _, s := range []string{"", "6.6.6.6", "for=6.6.6.6", `for="`, `for="\`, "for=6.6.6.6;for", "x=", "for=6.6.6.6;",
		`for="[2001:db8::1]"`, "unknown", ",,,", "for=10.0.0.9", "10.0.0.9", `by="a,b";for=1.1.1.1`} {
		f.Add(s)
	}
	const client, peer = "203.0.113.7", "10.0.0.1"
	ranges := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	extract := clientAddress(ranges)
	f.Fuzz(func(t *testing.T, spoof string) {
		for _, c := range []struct {
			hdrs   [][2]string
			orPeer bool
		}{
			{[][2]string{{"X-Forwarded-For", spoof + ", " + client}}, false},               // nginx $proxy_add_x_forwarded_for
			{[][2]string{{"X-Forwarded-For", spoof}, {"X-Forwarded-For", client}}, false},  // a line of its own
			{[][2]string{{"Forwarded", spoof}, {"Forwarded", "for=" + client}}, false},     // a line of its own
			{[][2]string{{"Forwarded", spoof + ", for=" + client + ";proto=https"}}, true}, // appended to the client's line
		} {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = peer + ":5000"
			for _, h := range c.hdrs {
				req.Header[h[0]] = append(req.Header[h[0]], h[1])
			}
			got := extract(req)
			if got != client && !(c.orPeer && got == peer) {
				t.Fatalf("headers %q from a trusted proxy: client %q, want %s", c.hdrs, got, client)
			}
		}
		for _, hop := range forwardedFor([]string{spoof}) {
			if a, err := netip.ParseAddr(hop); hop != "" && (err != nil || a.String() != hop) {
				t.Fatalf("Forwarded %q: hop %q is not a canonical address", spoof, hop)
			}
		}
	})
}

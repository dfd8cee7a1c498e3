package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// Client addresses (--trusted-proxies, docs/security.md#rate-limits). The
// client address is what the login rate limit counts and what a session's
// device.ip records when the caller leaves it out; every use reads it through
// c.RealIP(), that is through the one extractor built here.
//
// With no trusted proxies it is the TCP peer, and no header is read: not
// X-Forwarded-For, X-Real-IP nor Forwarded, whoever sends them, loopback
// included. When the peer is in a trusted range it is read from
// X-Forwarded-For, or from Forwarded (RFC 7239) when that header is absent:
// walking from the peer leftwards, the first address not in a trusted range;
// the hops to its left were written by the client and are never believed.
// A hop that is not an address stops the walk at the peer.

// ParseTrustedProxies reads --trusted-proxies entries: CIDR ranges
// ("10.0.0.0/8", "fd00::/8") or single addresses ("192.0.2.10", a /32 or
// /128). Spaces around an entry and empty entries are ignored; the error
// names the first entry that is neither.
func ParseTrustedProxies(entries []string) ([]netip.Prefix, error) {
	var ranges []netip.Prefix
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(e, "/") {
			var err error
			if p, err = netip.ParsePrefix(e); err != nil {
				why := strings.TrimPrefix(err.Error(), "netip.ParsePrefix("+strconv.Quote(e)+"): ")
				return nil, fmt.Errorf("%q is not a CIDR range such as 10.0.0.0/8 or fd00::/8: %s", e, why)
			}
		} else {
			a, err := netip.ParseAddr(e)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is neither a CIDR range (10.0.0.0/8) nor an IP address (192.0.2.10)", e)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("%q: write IPv4 ranges in IPv4 form (10.0.0.0/8), not IPv4-mapped IPv6", e)
		}
		ranges = append(ranges, p.Masked())
	}
	return ranges, nil
}

// checkTrustedProxies reports a range ParseTrustedProxies would not give.
func checkTrustedProxies(ranges []netip.Prefix) error {
	for _, p := range ranges {
		if !p.IsValid() || p.Addr().Is4In6() {
			return fmt.Errorf("httpapi: trusted proxy range %q is not a valid IPv4 or IPv6 CIDR", p.String())
		}
	}
	return nil
}

// clientAddress returns the extractor behind c.RealIP() for the trusted
// ranges.
func clientAddress(trusted []netip.Prefix) echo.IPExtractor {
	direct := echo.ExtractIPDirect()
	if len(trusted) == 0 {
		return direct
	}
	// echo trusts loopback, link-local and private addresses unless told
	// not to: exactly the configured ranges are trusted, nothing else.
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	trusted = slices.Clone(trusted) // the caller's slice may change later
	for i, p := range trusted {
		p = p.Masked()
		trusted[i] = p
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	fromXFF := echo.ExtractIPFromXFFHeader(opts...)
	return func(r *http.Request) string {
		peer := direct(r)
		if !inRanges(trusted, peer) {
			return peer
		}
		if len(r.Header[echo.HeaderXForwardedFor]) > 0 {
			return canonicalAddr(fromXFF(r))
		}
		lines := r.Header.Values(headerForwarded)
		if len(lines) == 0 {
			return peer
		}
		hops := forwardedFor(lines)
		if len(hops) == 0 {
			return peer
		}
		// The same walk as for X-Forwarded-For, over the for= hops (an
		// unreadable hop is "", which is no address and stops it).
		return canonicalAddr(fromXFF(&http.Request{
			RemoteAddr: r.RemoteAddr,
			Header:     http.Header{echo.HeaderXForwardedFor: {strings.Join(hops, ",")}},
		}))
	}
}

const headerForwarded = "Forwarded"

// inRanges reports whether addr is in one of the ranges. An address with an
// IPv6 zone is in none (echo's walk cannot read it either).
func inRanges(ranges []netip.Prefix, addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// canonicalAddr writes an address one way (IPv4-mapped IPv6 as IPv4,
// IPv6 compressed in lower case), so one client has one rate-limit bucket.
func canonicalAddr(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return s
}

// forwardedFor reads the for= node of every element of the Forwarded
// header lines (RFC 7239), left to right: its address, or "" when it names
// none (unknown, an obfuscated identifier such as _hidden, no for=, a
// duplicated for=, a malformed node). Empty list elements are skipped. A
// line that does not parse counts as one "" hop: a quoted string cannot
// run across lines, so the other lines still stand.
func forwardedFor(lines []string) []string {
	var hops []string
	for _, line := range lines {
		nodes, ok := parseForwardedLine(line)
		if !ok {
			hops = append(hops, "")
			continue
		}
		hops = append(hops, nodes...)
	}
	return hops
}

// parseForwardedLine parses one line:
//
//	Forwarded         = #forwarded-element
//	forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
//	forwarded-pair    = token "=" value
//	value             = token / quoted-string
//
// with optional whitespace around "," and ";". Parameter names are
// case-insensitive.
func parseForwardedLine(s string) (nodes []string, ok bool) {
	var (
		pairs  int    // pairs in the current element
		forVal string // its for= value
		fors   int    // how many for= it has
	)
	endElement := func() {
		if pairs > 0 {
			node := ""
			if fors == 1 {
				node = forwardedNode(forVal)
			}
			nodes = append(nodes, node)
		}
		pairs, forVal, fors = 0, "", 0
	}
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	for {
		skipSpace()
		if i == len(s) {
			endElement()
			return nodes, true
		}
		switch s[i] {
		case ',':
			endElement()
			i++
			continue
		case ';':
			i++
			continue
		}
		start := i
		for i < len(s) && isTokenChar(s[i]) {
			i++
		}
		name := s[start:i]
		if name == "" || i == len(s) || s[i] != '=' {
			return nil, false
		}
		i++
		var value string
		if i < len(s) && s[i] == '"' {
			var b strings.Builder
			for i++; ; i++ {
				if i == len(s) {
					return nil, false // unterminated
				}
				c := s[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' {
					if i++; i == len(s) {
						return nil, false
					}
					c = s[i]
				}
				if (c < ' ' && c != '\t') || c == 0x7f {
					return nil, false
				}
				b.WriteByte(c)
			}
			value = b.String()
		} else {
			start := i
			// A token, and leniently ":[]" too: some proxies leave
			// "for=192.0.2.1:80" or "for=[2001:db8::1]" unquoted.
			for i < len(s) && (isTokenChar(s[i]) || s[i] == ':' || s[i] == '[' || s[i] == ']') {
				i++
			}
			if value = s[start:i]; value == "" {
				return nil, false
			}
		}
		pairs++
		if strings.EqualFold(name, "for") {
			forVal = value
			fors++
		}
		skipSpace()
		if i < len(s) && s[i] != ',' && s[i] != ';' {
			return nil, false
		}
	}
}

// forwardedNode reads a for= node (RFC 7239 §6): an IPv4 address, or an
// IPv6 address in brackets, either with an optional port (digits or an
// obfuscated _port). "unknown" and obfuscated identifiers (_hidden) are
// not addresses, and neither is an IPv6 address without brackets: "".
func forwardedNode(v string) string {
	host, port := v, ""
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 0 {
			return ""
		}
		host, port = v[1:end], v[end+1:]
	} else if i := strings.IndexByte(v, ':'); i >= 0 {
		host, port = v[:i], v[i:]
	}
	if port != "" && !validNodePort(port) {
		return ""
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" || a.Is6() != strings.HasPrefix(v, "[") {
		return ""
	}
	return a.Unmap().String()
}

// validNodePort reads ":" followed by a port: 1–5 digits, or "_" and at
// least one of [A-Za-z0-9._-] (obfuscated).
func validNodePort(p string) bool {
	if len(p) < 2 || p[0] != ':' {
		return false
	}
	p = p[1:]
	if p[0] == '_' {
		if len(p) == 1 {
			return false
		}
		for i := 1; i < len(p); i++ {
			c := p[i]
			if !(isAlnum(c) || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
		return true
	}
	if len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// isTokenChar reports an RFC 9110 tchar.
func isTokenChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

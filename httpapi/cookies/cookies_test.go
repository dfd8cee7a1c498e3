package cookies

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDevMode(t *testing.T) {
	cases := []struct {
		addr string
		tls  bool
		want bool
	}{
		{"127.0.0.1:8080", false, true},
		{"127.1.2.3:8080", false, true},
		{"[::1]:8080", false, true},
		{"localhost:8080", false, true},
		{"LOCALHOST:8080", false, true},
		{"[::ffff:127.0.0.1]:8080", false, true},

		{"127.0.0.1:8080", true, false},
		{"[::1]:8080", true, false},
		{"localhost:8080", true, false},
		{"0.0.0.0:8080", false, false},
		{"[::]:8080", false, false},
		{":8080", false, false},
		{"", false, false},
		{"10.0.0.1:8080", false, false},
		{"192.168.1.10:8080", false, false},
		{"128.0.0.1:8080", false, false},
		{"example.com:443", false, false},
		{"localhost.example.com:8080", false, false},
		{"127.0.0.1", false, false}, // no port: not a listen address
		{"localhost", false, false}, // no port: not a listen address
		{"127.0.0.1:8080:1", false, false},
	}
	for _, c := range cases {
		if got := DevMode(c.addr, c.tls); got != c.want {
			t.Errorf("DevMode(%q, tls=%v) = %v; want %v", c.addr, c.tls, got, c.want)
		}
	}
}

func TestNames(t *testing.T) {
	if s, r := Names(false); s != "__Host-sessiond" || r != "__Host-sessiond_refresh" {
		t.Errorf("Names(false) = %q, %q", s, r)
	}
	if s, r := Names(true); s != "sessiond" || r != "sessiond_refresh" {
		t.Errorf("Names(true) = %q, %q", s, r)
	}
}

// setCookie returns the Set-Cookie header net/http writes for c, split into
// its name=value pair and its sorted attributes.
func setCookie(t *testing.T, c *http.Cookie) (string, []string) {
	t.Helper()
	rec := httptest.NewRecorder()
	http.SetCookie(rec, c)
	lines := rec.Header().Values("Set-Cookie")
	if len(lines) != 1 {
		t.Fatalf("Set-Cookie headers = %q; want exactly one (an invalid cookie is dropped)", lines)
	}
	parts := strings.Split(lines[0], "; ")
	attrs := parts[1:]
	slices.Sort(attrs)
	return parts[0], attrs
}

func TestCookie_Attributes(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	expires := now.Add(30*24*time.Hour + 1500*time.Millisecond)
	const value = "sa_abc.MAC"
	cases := []struct {
		name            string
		dev, persistent bool
		wantName        string
		wantAttrs       []string
	}{
		{"secure, browser-session", false, false, "__Host-sessiond",
			[]string{"HttpOnly", "Path=/", "SameSite=Lax", "Secure"}},
		{"secure, persistent", false, true, "__Host-sessiond",
			[]string{"Expires=Tue, 31 Mar 2026 12:00:01 GMT", "HttpOnly", "Max-Age=2592001", "Path=/", "SameSite=Lax", "Secure"}},
		{"dev, browser-session", true, false, "sessiond",
			[]string{"HttpOnly", "Path=/", "SameSite=Lax"}},
		{"dev, persistent", true, true, "sessiond",
			[]string{"Expires=Tue, 31 Mar 2026 12:00:01 GMT", "HttpOnly", "Max-Age=2592001", "Path=/", "SameSite=Lax"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name, _ := Names(c.dev)
			pair, attrs := setCookie(t, Cookie(name, value, c.dev, c.persistent, expires, now))
			if want := c.wantName + "=" + value; pair != want {
				t.Errorf("cookie = %q; want %q", pair, want)
			}
			if !slices.Equal(attrs, c.wantAttrs) {
				t.Errorf("attributes = %q; want %q", attrs, c.wantAttrs)
			}
			for _, a := range attrs {
				if strings.HasPrefix(a, "Domain=") {
					t.Errorf("cookie has %s; __Host- cookies must not", a)
				}
			}
		})
	}
}

func TestCookie_ExpiresInLocalZoneIsWrittenInGMT(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*60*60)
	now := time.Date(2026, 3, 1, 14, 0, 0, 0, zone)
	_, attrs := setCookie(t, Cookie(SessionName, "v.m", false, true, now.Add(time.Hour), now))
	if !slices.Contains(attrs, "Expires=Sun, 01 Mar 2026 13:00:00 GMT") || !slices.Contains(attrs, "Max-Age=3600") {
		t.Fatalf("attributes = %q; want Expires 13:00 GMT and Max-Age=3600", attrs)
	}
}

func TestCookie_PersistentAlreadyExpiredExpiresAtOnce(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, at := range []time.Time{now, now.Add(-time.Hour), now.Add(500 * time.Millisecond)} {
		c := Cookie(SessionName, "v.m", false, true, at, now)
		if c.MaxAge >= 0 {
			t.Errorf("expiresAt %v after now: MaxAge = %d; want negative (Max-Age=0 on the wire)", at.Sub(now), c.MaxAge)
		}
		_, attrs := setCookie(t, c)
		if !slices.Contains(attrs, "Max-Age=0") {
			t.Errorf("expiresAt %v after now: attributes = %q; want Max-Age=0", at.Sub(now), attrs)
		}
	}
}

func TestClear(t *testing.T) {
	for _, dev := range []bool{false, true} {
		session, refresh := Names(dev)
		for _, name := range []string{session, refresh} {
			pair, attrs := setCookie(t, Clear(name, dev))
			if pair != name+"=" {
				t.Errorf("Clear(%q) = %q; want an empty value", name, pair)
			}
			want := []string{"Expires=Thu, 01 Jan 1970 00:00:00 GMT", "HttpOnly", "Max-Age=0", "Path=/", "SameSite=Lax"}
			if !dev {
				want = append(want, "Secure")
			}
			if !slices.Equal(attrs, want) {
				t.Errorf("Clear(%q, dev=%v) attributes = %q; want %q", name, dev, attrs, want)
			}
		}
	}
}

package cookies

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Cookie names. The __Host- prefix makes browsers insist on Secure, Path=/
// and no Domain, so the cookie cannot be set or shadowed by a subdomain or
// over plain HTTP; dev mode drops it with Secure.
const (
	SessionName    = "__Host-sessiond"
	RefreshName    = "__Host-sessiond_refresh"
	DevSessionName = "sessiond"
	DevRefreshName = "sessiond_refresh"
)

// Names returns the session and refresh cookie names for the mode.
func Names(dev bool) (session, refresh string) {
	if dev {
		return DevSessionName, DevRefreshName
	}
	return SessionName, RefreshName
}

// DevMode reports whether cookies should drop Secure and the __Host- prefix:
// only when the HTTP listener is plain HTTP (tls false) on a loopback address
// (127.0.0.0/8, ::1 or "localhost"). Any other listener, including
// 0.0.0.0, an empty host or one that does not parse, keeps them: TLS may end
// at a proxy in front.
func DevMode(listenAddr string, tls bool) bool {
	if tls {
		return false
	}
	host, _, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return addr.Unmap().IsLoopback()
}

// Cookie returns a cookie carrying signedValue: HttpOnly, SameSite=Lax,
// Path=/, and Secure unless dev. With persistent it lasts until expiresAt
// (Expires and Max-Age, counted from now; one already past expires it at
// once); without, it is a browser-session cookie, gone when the browser
// closes.
func Cookie(name, signedValue string, dev, persistent bool, expiresAt, now time.Time) *http.Cookie {
	c := base(name, dev)
	c.Value = signedValue
	if persistent {
		c.Expires = expiresAt.UTC()
		// Round down, so the cookie never outlives what it carries; 0 would
		// mean "no Max-Age" to net/http, so under a second expires it now.
		c.MaxAge = int(expiresAt.Sub(now) / time.Second)
		if c.MaxAge <= 0 {
			c.MaxAge = -1
		}
	}
	return c
}

// Clear returns a cookie that makes the browser drop the named cookie at once
// (Max-Age=0 and an Expires in the past), with the same attributes it was set
// with.
func Clear(name string, dev bool) *http.Cookie {
	c := base(name, dev)
	c.MaxAge = -1
	c.Expires = time.Unix(0, 0).UTC()
	return c
}

func base(name string, dev bool) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Path:     "/",
		HttpOnly: true,
		Secure:   !dev,
		SameSite: http.SameSiteLaxMode,
	}
}

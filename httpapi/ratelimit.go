package httpapi

import (
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// Login rate limiting (429 rate_limited, docs/security.md#rate-limits). Lockout
// slows guessing per account; this bounds how fast one client address may try
// at all, across accounts, and keeps a flood from one address from taking every
// argon2id slot of the node. Each node counts its own requests. The client
// address is c.RealIP(): the peer, or what a trusted proxy forwarded
// (clientaddr.go).

// LoginRate is a per-client-address rate for logins and token exchanges.
type LoginRate struct {
	// PerSecond is the sustained rate; 0 turns the limit off.
	PerSecond float64
	// Burst is how many may come at once.
	Burst int
}

// DefaultLoginRate allows a client address 5 logins a second, 20 at once:
// generous for people behind one NAT, slow for a guessing script.
var DefaultLoginRate = LoginRate{PerSecond: 5, Burst: 20}

// maxLimitedClients bounds the addresses remembered; past it, idle ones
// are forgotten first.
const maxLimitedClients = 65536

type clientLimiter struct {
	rate    LoginRate
	mu      sync.Mutex
	clients map[string]*limiterEntry
	swept   time.Time
}

type limiterEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newClientLimiter(r LoginRate) *clientLimiter {
	return &clientLimiter{rate: r, clients: make(map[string]*limiterEntry)}
}

// allow reports whether a request from addr may go ahead now, and if not,
// how long until one may.
func (l *clientLimiter) allow(addr string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute || len(l.clients) >= maxLimitedClients {
		// An address idle long enough to have refilled its bucket needs no entry.
		idle := time.Duration(float64(l.rate.Burst)/l.rate.PerSecond*float64(time.Second)) + time.Second
		for a, e := range l.clients {
			if now.Sub(e.seen) > idle {
				delete(l.clients, a)
			}
		}
		l.swept = now
	}
	e := l.clients[addr]
	if e == nil {
		if len(l.clients) >= maxLimitedClients {
			return false, time.Second // every slot busy: a flood of addresses
		}
		e = &limiterEntry{lim: rate.NewLimiter(rate.Limit(l.rate.PerSecond), l.rate.Burst)}
		l.clients[addr] = e
	}
	e.seen = now
	r := e.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// loginLimit returns a middleware answering 429 when the client address
// is over its rate. Build it once: echo applies route middleware on every
// request, so the limiter must live outside it.
func (s *Server) loginLimit() echo.MiddlewareFunc {
	if s.cfg.LoginRate.PerSecond <= 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	lim := newClientLimiter(s.cfg.LoginRate)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if ok, wait := lim.allow(c.RealIP(), time.Now()); !ok {
				return &apiError{Status: http.StatusTooManyRequests, Code: codeRateLimited,
					Message: "too many login attempts from this address: slow down", retryAfter: int64(math.Ceil(wait.Seconds()))}
			}
			return next(c)
		}
	}
}

package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/sessiond/sessiond/httpapi/cookies"
	"github.com/sessiond/sessiond/httpapi/exchange"
)

// Config configures a Server.
type Config struct {
	// Backend plays every role the API needs (roles.go); New gives each
	// handler only the roles it uses. *node.Node is one.
	Backend Backend
	// APIKeys are the admin keys; any of them is accepted (rotation).
	APIKeys []string
	// WriteTimeout bounds how long a write waits for commit before 503.
	WriteTimeout time.Duration
	// Logger receives request and error logs.
	Logger *slog.Logger

	// CookieKeys sign and verify session cookies (docs/api.md#cookies); nil
	// disables cookies (?cookie=true is then refused).
	CookieKeys *cookies.Keys
	// CookieDevMode drops Secure and the __Host- prefix: only for plain
	// HTTP on a loopback address (cookies.DevMode).
	CookieDevMode bool
	// Exchange verifies JWTs from trusted issuers for POST
	// /v1/token/exchange; nil means no issuer is trusted.
	Exchange *exchange.Verifier
	// LoginRate limits logins and token exchanges per client address
	// (429); a zero PerSecond turns the limit off.
	LoginRate LoginRate
	// TrustedProxies are the ranges of the proxies and load balancers in
	// front of this node (--trusted-proxies; ParseTrustedProxies reads
	// them). The client address, which LoginRate counts and device.ip
	// records by default, is the TCP peer's unless the peer is in one of
	// these ranges: then it is the right-most X-Forwarded-For address not
	// in them or, without X-Forwarded-For, the right-most such Forwarded
	// (RFC 7239) for= address. Empty: no peer is trusted, loopback
	// included, and no forwarding header is read. X-Real-IP never is.
	TrustedProxies []netip.Prefix
	// AccountLoginURL is where the self-service page (/account/sessions)
	// sends a visitor without a session: the application's login page.
	AccountLoginURL string
}

// Default returns a configuration without backend or keys.
func Default() Config {
	return Config{WriteTimeout: 10 * time.Second, Logger: slog.Default(), LoginRate: DefaultLoginRate}
}

// Validate reports what is missing.
func (c Config) Validate() error {
	switch {
	case c.Backend == nil:
		return errors.New("httpapi: no backend")
	case len(c.APIKeys) == 0:
		return errors.New("httpapi: no admin API key")
	case c.WriteTimeout <= 0:
		return errors.New("httpapi: write timeout must be positive")
	case c.LoginRate.PerSecond < 0 || (c.LoginRate.PerSecond > 0 && c.LoginRate.Burst < 1):
		return errors.New("httpapi: the login rate must be positive with a burst of at least 1, or 0 for none")
	case c.Logger == nil:
		return errors.New("httpapi: no logger")
	}
	if err := checkTrustedProxies(c.TrustedProxies); err != nil {
		return err
	}
	for _, k := range c.APIKeys {
		if len(k) < 16 {
			return errors.New("httpapi: admin API keys must be at least 16 characters")
		}
	}
	return nil
}

// Server is the HTTP API of one node.
type Server struct {
	cfg Config
	// The roles of the backend (roles.go).
	sessions Sessions
	users    Users
	policy   PolicyStore
	cluster  Cluster
	// eventSource serves the event stream; nil when the backend keeps none.
	eventSource EventSource

	log  *slog.Logger
	keys [][sha256.Size]byte
	echo *echo.Echo
	http *http.Server
	// draining is cancelled when shutdown begins.
	draining context.Context
	// refreshes shares automatic cookie refreshes of one refresh token.
	refreshes cookieRefresher
}

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		sessions: cfg.Backend,
		users:    cfg.Backend,
		policy:   cfg.Backend,
		cluster:  cfg.Backend,
		log:      cfg.Logger.With("subsystem", "http"),
	}
	s.eventSource, _ = cfg.Backend.(EventSource)
	for _, k := range cfg.APIKeys {
		s.keys = append(s.keys, sha256.Sum256([]byte(k)))
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// The client address (c.RealIP) for the login rate limit and device.ip:
	// the peer's, or what a trusted proxy forwarded (clientaddr.go).
	// Headers such as X-Forwarded-For are anyone's to write.
	e.IPExtractor = clientAddress(cfg.TrustedProxies)
	e.Use(middleware.Recover())
	e.Use(s.consistencyHeaders)
	e.Use(s.idempotency)
	e.Use(s.requestLog)
	// The outer bound of any request; writes and waits have tighter ones.
	e.Use(middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{
		Timeout: maxReadWait + cfg.WriteTimeout,
		// Reads bound their own waits (?wait=, at most 30 s; leader
		// confirmation); sparing them a timer each keeps validation cheap.
		// The event stream lives as long as its client.
		Skipper: func(c echo.Context) bool {
			m := c.Request().Method
			return m == http.MethodGet || m == http.MethodHead
		},
	}))
	s.routes(e)
	s.echo = e
	// When shutdown starts, reads waiting for an index stop waiting and
	// answer 503 instead of holding the shutdown up. Requests themselves are
	// not cancelled: one still being read is served, and writes finish.
	var cancelDrain context.CancelFunc
	s.draining, cancelDrain = context.WithCancel(context.Background())
	s.http = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      maxReadWait + cfg.WriteTimeout + 5*time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.http.RegisterOnShutdown(cancelDrain)
	return s, nil
}

func (s *Server) routes(e *echo.Echo) {
	admin := s.requireAdmin
	e.POST("/v1/sessions", s.createSession, admin)
	e.POST("/v1/refresh", s.refresh)
	e.GET("/v1/session", s.currentSession)
	e.DELETE("/v1/session", s.logout)
	e.GET("/v1/sessions/:id", s.getSession, admin)
	e.DELETE("/v1/sessions/:id", s.revokeSession, admin)
	e.DELETE("/v1/sessions/:id/refresh", s.revokeRefresh, admin)
	e.POST("/v1/sessions/revoke", s.bulkRevoke, admin)
	e.GET("/v1/users/:id/sessions", s.userSessions, admin)
	e.DELETE("/v1/users/:id/sessions", s.forceLogout, admin)
	e.POST("/v1/introspect", s.introspect, admin)
	e.POST("/v1/revoke", s.revokeToken)
	e.GET("/v1/policy", s.getPolicy, admin)
	e.PUT("/v1/policy", s.putPolicy, admin)
	loginLimit := s.loginLimit() // one limiter for both routes
	e.POST("/v1/login", s.login, loginLimit)
	e.POST("/v1/token/exchange", s.exchange, loginLimit)
	e.GET("/v1/users/:id", s.getUser, admin)
	e.PUT("/v1/users/:id", s.putUser, admin)
	e.DELETE("/v1/users/:id", s.deleteUser, admin)
	e.PUT("/v1/users/:id/password", s.putPassword, admin)
	e.PUT("/v1/users/:id/limits", s.putLimits, admin)
	e.POST("/v1/users/:id/unlock", s.unlock, admin)
	// Forward auth: proxies send the original method, and Envoy appends the
	// original path.
	e.Any("/v1/auth", s.forwardAuth)
	e.Any("/v1/auth/*", s.forwardAuth)
	s.eventRoutes(e)
	s.metricsRoutes(e)
	s.consoleRoutes(e)
	s.selfServiceRoutes(e)
	e.GET("/v1/cluster", s.getCluster, admin)
	e.DELETE("/v1/cluster/members/:id", s.removeMember, admin)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
}

// Handler is the API as an http.Handler (tests, embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// Serve answers requests on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ServeTLS is Serve with TLS from the given certificate and key files.
func (s *Server) ServeTLS(l net.Listener, certFile, keyFile string) error {
	err := s.http.ServeTLS(l, certFile, keyFile)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests and waits for those in flight.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

// requireAdmin checks X-API-Key against every configured key in constant
// time (hashes of equal length are compared, and every key is tried).
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		presented := c.Request().Header.Get("X-API-Key")
		if presented == "" {
			return errUnauthenticated
		}
		h := sha256.Sum256([]byte(presented))
		match := 0
		for i := range s.keys {
			match |= subtle.ConstantTimeCompare(h[:], s.keys[i][:])
		}
		if match != 1 {
			return errUnauthenticated
		}
		return next(c)
	}
}

// requestLog logs each request at debug level by route pattern: never the
// raw path, query or headers, which may hold tokens or keys.
func (s *Server) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		id := s.assignRequestID(c)
		err := next(c)
		if s.log.Enabled(c.Request().Context(), slog.LevelDebug) {
			status := c.Response().Status
			if err != nil {
				if ae := toAPIError(err); ae != nil {
					status = ae.Status
				} else {
					status = http.StatusInternalServerError
				}
			}
			s.log.Debug("request", "request_id", id, "method", c.Request().Method, "route", c.Path(),
				"status", status, "duration", time.Since(start))
		}
		return err
	}
}

// writeContext bounds a write by the configured timeout.
func (s *Server) writeContext(c echo.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request().Context(), s.cfg.WriteTimeout)
}

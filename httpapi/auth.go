package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/httpapi/cookies"
	"github.com/sessiond/sessiond/node"
)

// Logins, token exchange, cookies and forward auth.

const (
	maxPasswordBytes = 1024
	maxEndSessions   = 100
)

type loginRequest struct {
	Email       string      `json:"email"`
	UserID      string      `json:"user_id"`
	Password    string      `json:"password"`
	App         *string     `json:"app"`
	RememberMe  bool        `json:"remember_me"`
	Device      *deviceJSON `json:"device"`
	EndSessions []string    `json:"end_sessions"`
}

// sessionOptions checks what every way of making a session shares and fills
// the device from the request where the caller left it out. app is nil
// when the request left it out (or sent null): the app is then "default".
func (s *Server) sessionOptions(c echo.Context, app *string, device *deviceJSON, remember bool, end []string) (node.CreateRequest, error) {
	req := node.CreateRequest{RememberMe: remember}
	var err error
	if req.App, err = appOrDefault(app); err != nil {
		return req, err
	}
	if device != nil {
		req.Device = events.Device{UserAgent: device.UserAgent, IP: device.IP, Label: device.Label}
	}
	if req.Device.UserAgent == "" {
		req.Device.UserAgent = truncateUTF8(c.Request().UserAgent(), maxDeviceField)
	}
	if req.Device.IP == "" {
		req.Device.IP = c.RealIP()
	}
	for field, v := range map[string]string{"device.user_agent": req.Device.UserAgent, "device.ip": req.Device.IP, "device.label": req.Device.Label} {
		if err := checkText(field, v, maxDeviceField); err != nil {
			return req, err
		}
	}
	if len(end) > maxEndSessions {
		return req, badRequest("end_sessions: at most %d", maxEndSessions)
	}
	for _, id := range end {
		if id == "" || len(id) > maxIDLength {
			return req, badRequest("end_sessions must list session ids")
		}
		req.EndSessions = append(req.EndSessions, events.SessionID(id))
	}
	return req, nil
}

// truncateUTF8 cuts v to at most n bytes without splitting a character, and
// drops what is not valid UTF-8 or NUL (a browser's header is not our
// caller's mistake).
func truncateUTF8(v string, n int) string {
	v = strings.ToValidUTF8(strings.ReplaceAll(v, "\x00", ""), "")
	if len(v) <= n {
		return v
	}
	for n > 0 && !isRuneStart(v[n]) {
		n--
	}
	return v[:n]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// wantsCookies reads ?cookie=true.
func (s *Server) wantsCookies(c echo.Context) (bool, error) {
	switch c.QueryParam("cookie") {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		if s.cfg.CookieKeys == nil {
			return false, badRequest("cookies are not configured on this node (--cookie-key-file)")
		}
		return true, nil
	}
	return false, badRequest("cookie must be true or false")
}

// POST /v1/login: email or user_id and password → a session.
func (s *Server) login(c echo.Context) error {
	var req loginRequest
	if err := bindJSON(c, &req, false); err != nil {
		return err
	}
	withCookies, err := s.wantsCookies(c)
	if err != nil {
		return err
	}
	switch {
	case (req.Email == "") == (req.UserID == ""):
		return badRequest("give exactly one of email and user_id")
	case req.Password == "":
		return badRequest("password is required")
	case len(req.Password) > maxPasswordBytes:
		return badRequest("password is longer than %d bytes", maxPasswordBytes)
	}
	if req.Email != "" {
		if err := checkEmail(req.Email); err != nil {
			return err
		}
	} else if err := checkID("user_id", req.UserID); err != nil {
		return err
	}
	create, err := s.sessionOptions(c, req.App, req.Device, req.RememberMe, req.EndSessions)
	if err != nil {
		return err
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	issued, err := s.users.Login(ctx, node.LoginRequest{
		Email: req.Email, UserID: events.UserID(req.UserID), Password: req.Password, Session: create,
	})
	if err != nil {
		return err
	}
	return s.answerIssued(c, issued, withCookies, "")
}

// answerIssued answers 201 with the tokens (and cookies when asked), and
// with issued_token_type when it is not empty (a token exchange).
func (s *Server) answerIssued(c echo.Context, issued node.Issued, withCookies bool, issuedTokenType string) error {
	setIndex(c, issued.Index)
	if withCookies {
		s.setSessionCookies(c, issued)
	}
	body := toTokenJSON(issued, s.now())
	return writeTokenJSON(c, http.StatusCreated, &body, issuedTokenType)
}

// RFC 8693 token types accepted as subject tokens: all are JWTs here.
var subjectTokenTypes = map[string]bool{
	"urn:ietf:params:oauth:token-type:jwt":          true,
	"urn:ietf:params:oauth:token-type:id_token":     true,
	"urn:ietf:params:oauth:token-type:access_token": true,
}

type exchangeRequest struct {
	GrantType        string      `json:"grant_type"`
	SubjectToken     string      `json:"subject_token"`
	SubjectTokenType string      `json:"subject_token_type"`
	App              *string     `json:"app"`
	RememberMe       bool        `json:"remember_me"`
	Device           *deviceJSON `json:"device"`
	EndSessions      []string    `json:"end_sessions"`
}

// POST /v1/token/exchange: a JWT from a trusted issuer → a session (RFC 8693
// style). Every token problem is the one generic 401.
func (s *Server) exchange(c echo.Context) error {
	var req exchangeRequest
	if err := bindJSON(c, &req, false); err != nil {
		return err
	}
	withCookies, err := s.wantsCookies(c)
	if err != nil {
		return err
	}
	if req.GrantType != "" && req.GrantType != "urn:ietf:params:oauth:grant-type:token-exchange" {
		return badRequest("grant_type must be urn:ietf:params:oauth:grant-type:token-exchange")
	}
	if req.SubjectToken == "" {
		return badRequest("subject_token is required")
	}
	if !subjectTokenTypes[req.SubjectTokenType] {
		return badRequest("subject_token_type must be urn:ietf:params:oauth:token-type:jwt (or id_token, access_token)")
	}
	create, err := s.sessionOptions(c, req.App, req.Device, req.RememberMe, req.EndSessions)
	if err != nil {
		return err
	}
	if s.cfg.Exchange == nil {
		return &apiError{Status: http.StatusUnauthorized, Code: codeUnauthenticated, Message: unauthenticatedMessage,
			detail: "token exchange: no trusted issuers configured"}
	}
	id, err := s.cfg.Exchange.Verify(req.SubjectToken, s.sessions.Now())
	if err != nil {
		// The reason (never the token) helps an operator; the client learns nothing.
		return &apiError{Status: http.StatusUnauthorized, Code: codeUnauthenticated, Message: unauthenticatedMessage, detail: err.Error()}
	}
	if err := checkID("the token's user id claim", id.Subject); err != nil {
		return err
	}
	if err := checkScopes(id.Scopes); err != nil {
		return err
	}
	if err := checkAttributes(id.Attributes); err != nil {
		return err
	}
	create.UserID = events.UserID(id.Subject)
	create.AuthMethod = events.AuthExchange
	create.Scopes = id.Scopes
	create.Attributes = id.Attributes
	ctx, cancel := s.writeContext(c)
	defer cancel()
	issued, err := s.sessions.CreateSession(ctx, create)
	if err != nil {
		return err
	}
	return s.answerIssued(c, issued, withCookies, "urn:ietf:params:oauth:token-type:access_token")
}

// Cookies (docs/api.md#cookies): the session cookie holds the signed access
// token, the refresh cookie the signed refresh token. Both are HttpOnly,
// SameSite=Lax, Path=/, Secure with the __Host- prefix except in loopback dev
// mode, and persistent only for remember-me sessions.

func (s *Server) cookieNames() (session, refresh string) { return cookies.Names(s.cfg.CookieDevMode) }

func (s *Server) setSessionCookies(c echo.Context, issued node.Issued) {
	sess := issued.Session
	expires := time.Unix(0, min(sess.RefreshExpiresAt, sess.ExpiresAt))
	now := s.sessions.Now()
	sessionName, refreshName := s.cookieNames()
	keys, dev := s.cfg.CookieKeys, s.cfg.CookieDevMode
	c.SetCookie(cookies.Cookie(sessionName, keys.Sign(issued.AccessToken), dev, sess.RememberMe, expires, now))
	c.SetCookie(cookies.Cookie(refreshName, keys.Sign(issued.RefreshToken), dev, sess.RememberMe, expires, now))
}

func (s *Server) clearSessionCookies(c echo.Context) {
	sessionName, refreshName := s.cookieNames()
	c.SetCookie(cookies.Clear(sessionName, s.cfg.CookieDevMode))
	c.SetCookie(cookies.Clear(refreshName, s.cfg.CookieDevMode))
}

// callerScope is a read of the caller's session token.
func (s *Server) callerScope(c echo.Context) readScope {
	token, _ := s.sessionToken(c)
	return s.tokenScope(token)
}

// cookieValue is the verified value of a signed cookie, or "".
func (s *Server) cookieValue(c echo.Context, name string) string {
	if s.cfg.CookieKeys == nil {
		return ""
	}
	ck, err := c.Cookie(name)
	if err != nil {
		return ""
	}
	v, ok := s.cfg.CookieKeys.Verify(ck.Value)
	if !ok {
		return ""
	}
	return v
}

// sessionToken is the access token a session caller presents: a header
// (Authorization: Bearer, X-Session-Token) first, else the session cookie.
func (s *Server) sessionToken(c echo.Context) (token string, fromCookie bool) {
	h := c.Request().Header
	if h.Get(echo.HeaderAuthorization) != "" || h.Get("X-Session-Token") != "" {
		return presentedToken(c), false
	}
	sessionName, _ := s.cookieNames()
	return s.cookieValue(c, sessionName), true
}

// validateCaller validates the caller's session as this node may vouch for
// it: from a state no older than max-stale (or a tighter ?max_stale=), else
// confirmed through the leader, else 503 (node.Validate). A cookie caller
// whose access token has expired (or is gone) but whose refresh cookie is
// valid is refreshed on the spot and answered with new cookies, so an active
// browser session lasts as long as its refresh token.
func (s *Server) validateCaller(c echo.Context) (fsm.Session, error) {
	token, fromCookie := s.sessionToken(c)
	group := s.sessions.TokenGroup(token)
	if err := s.vouchTighter(c, group); err != nil {
		return fsm.Session{}, err
	}
	sess, err := s.sessions.Validate(c.Request().Context(), token)
	// The state the token was judged in: Validate may have caught up.
	s.setAppliedIndex(c, group)
	if err == nil || !fromCookie || !errors.Is(err, fsm.ErrUnauthenticated) {
		return sess, err
	}
	_, refreshName := s.cookieNames()
	refresh := s.cookieValue(c, refreshName)
	if refresh == "" {
		return sess, err
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	issued, rerr := s.refreshes.do(ctx, refresh, s.sessions.Refresh)
	if rerr != nil {
		if errors.Is(rerr, fsm.ErrUnauthenticated) || errors.Is(rerr, fsm.ErrRefreshReuse) {
			s.clearSessionCookies(c)
			return sess, err
		}
		return sess, rerr
	}
	s.setSessionCookies(c, issued)
	setIndex(c, issued.Index)
	return issued.Session, nil
}

// cookieRefresher makes concurrent automatic refreshes of one refresh
// cookie (a page loading many resources, several tabs) share one refresh:
// otherwise the second use of the rotated token would count as theft and
// end the session. A result is kept for a few seconds, for requests that
// were sent before the browser stored the new cookies. Tokens stay in
// memory only.
type cookieRefresher struct {
	mu        sync.Mutex
	calls     map[events.TokenHash]*refreshCall
	lastSweep time.Time
}

type refreshCall struct {
	done   chan struct{}
	issued node.Issued
	err    error
	at     time.Time
}

const (
	refreshShareWindow = 10 * time.Second
	maxSharedRefreshes = 10000
)

func (r *cookieRefresher) do(ctx context.Context, refresh string, run func(context.Context, string) (node.Issued, error)) (node.Issued, error) {
	key := events.HashToken(refresh)
	r.mu.Lock()
	if r.calls == nil {
		r.calls = make(map[events.TokenHash]*refreshCall)
	}
	now := time.Now()
	if call, ok := r.calls[key]; ok && (call.at.IsZero() || now.Sub(call.at) < refreshShareWindow) {
		r.mu.Unlock()
		select {
		case <-call.done:
			return call.issued, call.err
		case <-ctx.Done():
			return node.Issued{}, fmt.Errorf("%w: refresh not done in time", node.ErrUnavailable)
		}
	}
	if len(r.calls) >= maxSharedRefreshes || now.Sub(r.lastSweep) >= refreshShareWindow {
		// Finished refreshes are forgotten once their window has passed:
		// their tokens are not kept in memory longer than that.
		for k, call := range r.calls {
			if !call.at.IsZero() && now.Sub(call.at) >= refreshShareWindow {
				delete(r.calls, k)
			}
		}
		r.lastSweep = now
	}
	call := &refreshCall{done: make(chan struct{})}
	r.calls[key] = call
	r.mu.Unlock()

	call.issued, call.err = run(ctx, refresh)
	r.mu.Lock()
	call.at = time.Now()
	if call.err != nil && !errors.Is(call.err, fsm.ErrUnauthenticated) && !errors.Is(call.err, fsm.ErrRefreshReuse) {
		delete(r.calls, key) // an unknown outcome: let the next request try again
	}
	r.mu.Unlock()
	close(call.done)
	return call.issued, call.err
}

// GET /v1/auth (any method, any subpath): forward auth for nginx
// auth_request, Traefik ForwardAuth and Envoy ext_authz. 200 with the
// session in headers, else 401 with WWW-Authenticate: Bearer.
func (s *Server) forwardAuth(c echo.Context) error {
	if err := s.readAt(c, s.callerScope(c)); err != nil {
		return err
	}
	sess, err := s.validateCaller(c)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("X-Session-Id", string(sess.ID()))
	h.Set("X-User-Id", string(sess.UserID))
	h.Set("X-Session-Scopes", strings.Join(sess.Scopes(), " "))
	h.Set("X-Session-Expires", time.Unix(0, min(sess.AccessExpiresAt, sess.ExpiresAt)).UTC().Format(time.RFC3339))
	h.Set("X-Session-App", sess.App())
	noStore(c)
	return c.NoContent(http.StatusOK)
}

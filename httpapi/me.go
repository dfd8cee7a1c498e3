package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
)

// A user's own sessions (docs/api.md#endpoints, /v1/me/*): the caller —
// Bearer, X-Session-Token or the session cookie — lists its user's active
// sessions, ends one of them, or signs out everywhere else. The self-service
// page /account/sessions (account.go) is built on these three calls.
//
// Cross-site request forgery: a browser attaches the session cookie to any
// request to this origin, so a state-changing call authenticated by cookie must
// carry something a cross-site page cannot send: the header X-Requested-With
// (the page sends "sessiond"). A custom header cannot be added cross-origin
// without a CORS preflight, which sessiond never grants. Without it the answer
// is 400 bad_request — the request is malformed for what it asks (the API has
// no 403). Callers that send their token in a header are not exposed (a
// cross-site page cannot set Authorization) and need nothing more. Form bodies
// (what an HTML form sends) are refused on these routes with 415 whoever the
// caller is; HTML forms cannot send DELETE at all, and a POST to these routes
// is 405 (no method override is honoured).

// csrfHeader is the header a cookie caller must send on /v1/me writes.
const csrfHeader = "X-Requested-With"

func (s *Server) selfServiceRoutes(e *echo.Echo) {
	e.GET("/v1/me/sessions", s.mySessions)
	e.DELETE("/v1/me/sessions", s.endOtherSessions, s.guardSelfService)
	e.DELETE("/v1/me/sessions/:id", s.endMySession, s.guardSelfService)
	s.accountRoutes(e)
}

// mySessionJSON is one of the caller's sessions: the admin view of a
// session plus a readable device name and whether it is the calling one.
type mySessionJSON struct {
	sessionJSON
	// DeviceName is browser and OS from the user agent, e.g. "Firefox on
	// Linux".
	DeviceName string `json:"device_name"`
	Current    bool   `json:"current"`
}

type mySessionsJSON struct {
	Sessions []mySessionJSON `json:"sessions"`
}

// GET /v1/me/sessions: the caller's active sessions, newest first, the
// calling one marked "current": true.
func (s *Server) mySessions(c echo.Context) error {
	if err := s.readAt(c, s.callerScope(c)); err != nil {
		return err
	}
	caller, err := s.validateCaller(c)
	if err != nil {
		return err
	}
	list := s.sessions.UserSessions(caller.UserID)
	out := mySessionsJSON{Sessions: make([]mySessionJSON, 0, len(list))}
	for _, sess := range list {
		out.Sessions = append(out.Sessions, mySessionJSON{
			sessionJSON: toSessionJSON(sess, fsm.StatusActive), // only active ones are listed
			DeviceName:  deviceName(sess.UserAgent()),
			Current:     sess.ID() == caller.ID(),
		})
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, out)
}

// DELETE /v1/me/sessions/:id: end one of the caller's own sessions (the
// calling one included). A session of another user answers exactly as an
// unknown one: 404.
func (s *Server) endMySession(c echo.Context) error {
	caller, err := s.callerForWrite(c)
	if err != nil {
		return err
	}
	id, err := sessionParam(c)
	if err != nil {
		return err
	}
	// The caller's state is the leader's as of callerForWrite, and a
	// session's user never changes: the ownership seen here holds at apply.
	target, ok := s.sessions.Session(id)
	if !ok || target.UserID != caller.UserID {
		return errSessionNotFound
	}
	reason := events.ReasonUser
	if id == caller.ID() {
		reason = events.ReasonLogout
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	index, err := s.sessions.RevokeSession(ctx, id, events.RevokeWholeSession, reason)
	if errors.Is(err, fsm.ErrNotFound) {
		return errSessionNotFound // collected since it was looked up
	}
	if err != nil {
		return err
	}
	if id == caller.ID() {
		s.dropCallerCookies(c)
	}
	setIndex(c, index)
	return c.NoContent(http.StatusNoContent)
}

// DELETE /v1/me/sessions: "sign out everywhere else" — end every other
// session of the caller's user; ?include_current=true ends the calling one
// too. One UserForceLoggedOut event with reason "user".
func (s *Server) endOtherSessions(c echo.Context) error {
	var includeCurrent bool
	switch c.QueryParam("include_current") {
	case "", "false", "0":
	case "true", "1":
		includeCurrent = true
	default:
		return badRequest("include_current must be true or false")
	}
	caller, err := s.callerForWrite(c)
	if err != nil {
		return err
	}
	except := caller.ID()
	if includeCurrent {
		except = ""
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	n, index, err := s.sessions.ForceLogout(ctx, caller.UserID, events.ReasonUser, except)
	if err != nil {
		return err
	}
	if includeCurrent {
		s.dropCallerCookies(c)
	}
	setIndex(c, index)
	return c.JSON(http.StatusOK, revokedJSON{Revoked: n, Index: index.N})
}

// callerForWrite is the caller's session for a call that ends sessions,
// confirmed against the leader's latest state: after validating locally it
// runs a read barrier and checks the session again, so a session revoked
// anywhere in the cluster cannot end others through a node that has not
// applied the revocation yet.
func (s *Server) callerForWrite(c echo.Context) (fsm.Session, error) {
	caller, err := s.validateCaller(c)
	if err != nil {
		return caller, err
	}
	if err := s.confirmWithLeader(c, defaultReadWait, s.sessionScope(caller.ID())); err != nil {
		return caller, err
	}
	current, ok := s.sessions.Session(caller.ID())
	if !ok || s.sessions.SessionStatus(current) != fsm.StatusActive {
		return caller, errUnauthenticated
	}
	return current, nil
}

// dropCallerCookies clears a cookie caller's cookies once its own session
// has ended (replacing any a refresh earlier in the request set).
func (s *Server) dropCallerCookies(c echo.Context) {
	if _, fromCookie := s.sessionToken(c); !fromCookie || s.cfg.CookieKeys == nil {
		return
	}
	c.Response().Header().Del(echo.HeaderSetCookie)
	s.clearSessionCookies(c)
}

// guardSelfService protects the /v1/me writes: no form bodies (415) nor
// any body at all (400), and a cookie caller must send X-Requested-With and
// must not be a cross-site request by the browser's own account
// (Sec-Fetch-Site), else 400.
func (s *Server) guardSelfService(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch mediaType(c) {
		case echo.MIMEApplicationForm, echo.MIMEMultipartForm, echo.MIMETextPlain:
			return &apiError{Status: http.StatusUnsupportedMediaType, Code: codeUnsupportedMedia,
				Message: "form bodies are not accepted here; this request takes no body"}
		}
		body, err := readBody(c)
		if err != nil {
			return err
		}
		if len(body) > 0 {
			return badRequest("this request takes no body (include_current is a query parameter)")
		}
		if s.cookieCaller(c) {
			h := c.Request().Header
			if strings.TrimSpace(h.Get(csrfHeader)) == "" {
				return badRequest("a request authenticated by cookie that changes state must send the header %s: sessiond (CSRF protection)", csrfHeader)
			}
			if strings.EqualFold(h.Get("Sec-Fetch-Site"), "cross-site") {
				return badRequest("cross-site requests authenticated by cookie are refused (CSRF protection)")
			}
		}
		return next(c)
	}
}

// cookieCaller reports whether the request would be authenticated by a
// session or refresh cookie (no token header, and a cookie present).
func (s *Server) cookieCaller(c echo.Context) bool {
	if _, fromCookie := s.sessionToken(c); !fromCookie || s.cfg.CookieKeys == nil {
		return false
	}
	sessionName, refreshName := s.cookieNames()
	for _, name := range []string{sessionName, refreshName} {
		if ck, err := c.Cookie(name); err == nil && ck.Value != "" {
			return true
		}
	}
	return false
}

package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/node"
)

// now is the node's clock (Sessions.Now) in Unix nanoseconds: statuses and expires_in
// are judged at the same "now" the node's reads use.
func (s *Server) now() int64 { return s.sessions.Now().UnixNano() }

// presentedToken is the access token of a session caller:
// "Authorization: Bearer <token>" or "X-Session-Token: <token>".
func presentedToken(c echo.Context) string {
	h := c.Request().Header
	if auth := h.Get(echo.HeaderAuthorization); auth != "" {
		scheme, token, ok := strings.Cut(auth, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token)
		}
		return ""
	}
	return h.Get("X-Session-Token")
}

type createSessionRequest struct {
	UserID     string            `json:"user_id"`
	App        *string           `json:"app"` // nil (left out or null): "default"
	Scopes     []string          `json:"scopes"`
	Attributes map[string]string `json:"attributes"`
	RememberMe bool              `json:"remember_me"`
	Device     *deviceJSON       `json:"device"`
}

// POST /v1/sessions (admin): a session for a user without a login.
func (s *Server) createSession(c echo.Context) error {
	var req createSessionRequest
	if err := bindJSON(c, &req, false); err != nil {
		return err
	}
	if err := checkID("user_id", req.UserID); err != nil {
		return err
	}
	app, err := appOrDefault(req.App)
	if err != nil {
		return err
	}
	if err := checkScopes(req.Scopes); err != nil {
		return err
	}
	if err := checkAttributes(req.Attributes); err != nil {
		return err
	}
	var device events.Device
	if req.Device != nil {
		device = events.Device{UserAgent: req.Device.UserAgent, IP: req.Device.IP, Label: req.Device.Label}
	}
	for field, v := range map[string]string{"device.user_agent": device.UserAgent, "device.ip": device.IP, "device.label": device.Label} {
		if err := checkText(field, v, maxDeviceField); err != nil {
			return err
		}
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	issued, err := s.sessions.CreateSession(ctx, node.CreateRequest{
		UserID:     events.UserID(req.UserID),
		App:        app,
		AuthMethod: events.AuthImpersonation,
		RememberMe: req.RememberMe,
		Scopes:     req.Scopes,
		Attributes: req.Attributes,
		Device:     device,
	})
	if err != nil {
		return err
	}
	setIndex(c, issued.Index)
	body := toTokenJSON(issued, s.now())
	return writeTokenJSON(c, http.StatusCreated, &body, "")
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// POST /v1/refresh: a refresh token for a new token pair.
func (s *Server) refresh(c echo.Context) error {
	var req refreshRequest
	if err := bindJSON(c, &req, false); err != nil {
		return err
	}
	if req.RefreshToken == "" {
		return badRequest("refresh_token is required")
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	issued, err := s.sessions.Refresh(ctx, req.RefreshToken)
	if err != nil {
		return err
	}
	setIndex(c, issued.Index)
	body := toTokenJSON(issued, s.now())
	return writeTokenJSON(c, http.StatusOK, &body, "")
}

// GET /v1/session: validate the presented access token.
func (s *Server) currentSession(c echo.Context) error {
	if err := s.readAt(c, s.callerScope(c)); err != nil {
		return err
	}
	sess, err := s.validateCaller(c)
	if err != nil {
		return err
	}
	out := toSessionJSON(sess, fsm.StatusActive)
	return writeSessionJSON(c, http.StatusOK, &out)
}

// DELETE /v1/session: log out the presented session.
func (s *Server) logout(c echo.Context) error {
	ctx, cancel := s.writeContext(c)
	defer cancel()
	token, fromCookie := s.sessionToken(c)
	index, err := s.sessions.Logout(ctx, token)
	if fromCookie && errors.Is(err, fsm.ErrUnauthenticated) {
		// The access cookie has expired: the refresh cookie still names the
		// session, and revoking a refresh token ends its session.
		_, refreshName := s.cookieNames()
		if refresh := s.cookieValue(c, refreshName); refresh != "" {
			index, err = s.sessions.RevokeToken(ctx, refresh)
		}
	}
	if fromCookie && s.cfg.CookieKeys != nil && (err == nil || errors.Is(err, fsm.ErrUnauthenticated)) {
		s.clearSessionCookies(c)
	}
	if err != nil {
		return err
	}
	setIndex(c, index)
	return c.NoContent(http.StatusNoContent)
}

// pathParam is a path parameter, percent-decoded (clients encode "@" and ":"
// in user ids as encodeURIComponent does).
func pathParam(c echo.Context, name string) (string, error) {
	v, err := url.PathUnescape(c.Param(name))
	if err != nil {
		return "", badRequest("%s is not a valid path segment", name)
	}
	return v, nil
}

func sessionParam(c echo.Context) (events.SessionID, error) {
	id, err := pathParam(c, "id")
	if err != nil || id == "" || len(id) > maxIDLength {
		return "", errSessionNotFound
	}
	return events.SessionID(id), nil
}

func userParam(c echo.Context) (events.UserID, error) {
	user, err := pathParam(c, "id")
	if err != nil {
		return "", err
	}
	if err := checkID("user_id", user); err != nil {
		return "", err
	}
	return events.UserID(user), nil
}

// GET /v1/sessions/:id (admin): a session in any status.
func (s *Server) getSession(c echo.Context) error {
	id, err := sessionParam(c)
	if err != nil {
		return err
	}
	if err := s.readAt(c, s.sessionScope(id)); err != nil {
		return err
	}
	sess, ok := s.sessions.Session(id)
	if !ok {
		return errSessionNotFound
	}
	noStore(c)
	return c.JSON(http.StatusOK, toSessionJSON(sess, s.sessions.SessionStatus(sess)))
}

// DELETE /v1/sessions/:id (admin): revoke a session and its refresh token.
func (s *Server) revokeSession(c echo.Context) error {
	return s.revokeByID(c, events.RevokeWholeSession)
}

// DELETE /v1/sessions/:id/refresh (admin): revoke only the refresh token.
func (s *Server) revokeRefresh(c echo.Context) error {
	return s.revokeByID(c, events.RevokeRefreshToken)
}

func (s *Server) revokeByID(c echo.Context, scope events.RevokeScope) error {
	id, err := sessionParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	index, err := s.sessions.RevokeSession(ctx, id, scope, events.ReasonAdmin)
	if err != nil {
		return err
	}
	setIndex(c, index)
	return c.NoContent(http.StatusNoContent)
}

type bulkRevokeRequest struct {
	CreatedBefore *time.Time `json:"created_before"`
	Apps          []string   `json:"apps"`
}

type revokedJSON struct {
	Revoked int    `json:"revoked"`
	Index   uint64 `json:"index"`
}

// POST /v1/sessions/revoke (admin): revoke every session created before a
// time (default: now), optionally only of some apps.
func (s *Server) bulkRevoke(c echo.Context) error {
	var req bulkRevokeRequest
	if err := bindJSON(c, &req, true); err != nil {
		return err
	}
	for _, app := range req.Apps {
		if err := checkID("apps", app); err != nil {
			return err
		}
	}
	var before time.Time // zero: now, as the leader stamps it
	if req.CreatedBefore != nil {
		if !req.CreatedBefore.After(time.Unix(0, 0)) {
			return badRequest("created_before must be after 1970")
		}
		// A time in the future means everything so far; it also keeps
		// far-future times from overflowing Unix nanoseconds.
		if req.CreatedBefore.Before(s.sessions.Now()) {
			before = *req.CreatedBefore
		}
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	n, index, err := s.sessions.BulkRevoke(ctx, before, req.Apps)
	if err != nil {
		return err
	}
	setIndex(c, index)
	return c.JSON(http.StatusOK, revokedJSON{Revoked: n, Index: index.N})
}

type sessionsJSON struct {
	Sessions []sessionJSON `json:"sessions"`
}

// GET /v1/users/:id/sessions (admin): active sessions, newest first.
func (s *Server) userSessions(c echo.Context) error {
	user, err := userParam(c)
	if err != nil {
		return err
	}
	if err := s.readAt(c, groupScope(s.users.UserGroup(user))); err != nil {
		return err
	}
	list := s.sessions.UserSessions(user)
	out := sessionsJSON{Sessions: make([]sessionJSON, 0, len(list))}
	for _, sess := range list {
		out.Sessions = append(out.Sessions, toSessionJSON(sess, fsm.StatusActive)) // only active ones are listed
	}
	noStore(c)
	return c.JSON(http.StatusOK, out)
}

// forceLogoutRequest is the optional body of a force logout; a field given
// there (and not null) overrides the query parameter of the same name.
type forceLogoutRequest struct {
	Reason *string `json:"reason"`
	Except *string `json:"except"`
}

// forceLogoutReasons are the reasons an admin may give (docs/api.md#endpoints).
var forceLogoutReasons = map[string]events.Reason{
	"admin":           events.ReasonAdmin,
	"password_change": events.ReasonPasswordChange,
	"password_reset":  events.ReasonPasswordReset,
	"user_deleted":    events.ReasonUserDeleted,
}

// DELETE /v1/users/:id/sessions (admin): force logout, optionally keeping
// one session.
func (s *Server) forceLogout(c echo.Context) error {
	user, err := userParam(c)
	if err != nil {
		return err
	}
	reasonName, except := c.QueryParam("reason"), c.QueryParam("except")
	var req forceLogoutRequest
	if err := bindJSON(c, &req, true); err != nil {
		return err
	}
	if req.Reason != nil {
		reasonName = *req.Reason
	}
	if req.Except != nil {
		except = *req.Except
	}
	if reasonName == "" {
		reasonName = "admin"
	}
	reason, ok := forceLogoutReasons[reasonName]
	if !ok {
		return badRequest("reason must be one of admin, password_change, password_reset, user_deleted")
	}
	if len(except) > maxIDLength {
		return badRequest("except is not a session id")
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	n, index, err := s.sessions.ForceLogout(ctx, user, reason, events.SessionID(except))
	if err != nil {
		return err
	}
	setIndex(c, index)
	return c.JSON(http.StatusOK, revokedJSON{Revoked: n, Index: index.N})
}

// POST /v1/introspect (admin): RFC 7662.
func (s *Server) introspect(c echo.Context) error {
	req, err := bindTokenRequest(c)
	if err != nil {
		return err
	}
	scope := s.tokenScope(req.Token)
	group := scope.group
	if err := s.readAt(c, scope); err != nil {
		return err
	}
	if err := s.vouchTighter(c, group); err != nil {
		return err
	}
	info, err := s.sessions.Introspect(c.Request().Context(), req.Token)
	if err != nil {
		return err
	}
	s.setAppliedIndex(c, group)
	noStore(c)
	return c.JSON(http.StatusOK, toIntrospectionJSON(info))
}

// POST /v1/revoke: RFC 7009. Holding a token is the right to revoke it, so
// no other credential is needed; the answer is 200 whether or not the token
// was known.
func (s *Server) revokeToken(c echo.Context) error {
	req, err := bindTokenRequest(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	index, err := s.sessions.RevokeToken(ctx, req.Token)
	if err != nil {
		return err
	}
	setIndex(c, index)
	return c.NoContent(http.StatusOK)
}

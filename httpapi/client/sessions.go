package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Sessions: creation, login, exchange, refresh, validation, logout, forward
// auth, introspection, revocation and admin views (docs/api.md#endpoints).

// CreateSession makes a session for a user without a login (admin).
func (c *Client) CreateSession(ctx context.Context, req CreateSessionRequest) (*Tokens, error) {
	var out Tokens
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/sessions", body: req, admin: true, kind: create}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Login checks a user's password and makes a session. A locked account
// answers an error matching ErrLocked (RetryAfter set); a user at the
// session limit one matching ErrSessionLimit, with the user's sessions in
// the *Error.
func (c *Client) Login(ctx context.Context, req LoginRequest) (*Tokens, error) {
	var out Tokens
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/login", body: req, kind: create}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

type exchangeWire struct {
	GrantType string `json:"grant_type"`
	ExchangeRequest
}

// Exchange trades a JWT from a trusted issuer for a session.
func (c *Client) Exchange(ctx context.Context, req ExchangeRequest) (*Tokens, error) {
	if req.SubjectTokenType == "" {
		req.SubjectTokenType = TokenTypeJWT
	}
	body := exchangeWire{GrantType: "urn:ietf:params:oauth:grant-type:token-exchange", ExchangeRequest: req}
	var out Tokens
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/token/exchange", body: body, kind: create}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Refresh trades a refresh token for a new token pair; the old pair stops
// working. Using a refresh token twice revokes the session.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	var out Tokens
	body := map[string]string{"refresh_token": refreshToken}
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/refresh", body: body, kind: create}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Validate checks an access token (GET /v1/session) and returns its
// session; an invalid token answers an error matching ErrUnauthenticated.
func (c *Client) Validate(ctx context.Context, accessToken string) (*Session, error) {
	var out Session
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/session", token: accessToken, kind: read}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Logout revokes the session of an access token (DELETE /v1/session) and
// returns the write's index.
func (c *Client) Logout(ctx context.Context, accessToken string) (uint64, error) {
	h, err := c.call(ctx, request{method: http.MethodDelete, path: "/v1/session", token: accessToken, kind: idempotent}, nil)
	if err != nil {
		return 0, err
	}
	return headerIndex(h).N, nil
}

// AuthCheck asks forward auth (GET /v1/auth) about an access token, as a
// proxy would.
func (c *Client) AuthCheck(ctx context.Context, accessToken string) (*AuthInfo, error) {
	h, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/auth", token: accessToken, kind: read}, nil)
	if err != nil {
		return nil, err
	}
	info := &AuthInfo{
		SessionID: h.Get("X-Session-Id"),
		UserID:    h.Get("X-User-Id"),
		App:       h.Get("X-Session-App"),
		Scopes:    strings.Fields(h.Get("X-Session-Scopes")),
	}
	if info.Scopes == nil {
		info.Scopes = []string{}
	}
	if t, err := time.Parse(time.RFC3339, h.Get("X-Session-Expires")); err == nil {
		info.ExpiresAt = t
	}
	return info, nil
}

// Introspect describes any token (admin, RFC 7662): inactive tokens answer
// Active false with their status.
func (c *Client) Introspect(ctx context.Context, token string) (*Introspection, error) {
	var out Introspection
	body := map[string]string{"token": token}
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/introspect", body: body, admin: true, kind: read}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeToken revokes a token (RFC 7009): a refresh token ends its
// session, an access token stops only itself. Unknown tokens are not an
// error. The admin key is sent when the client has one.
func (c *Client) RevokeToken(ctx context.Context, token string) (uint64, error) {
	body := map[string]string{"token": token}
	h, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/revoke", body: body, admin: true, kind: idempotent}, nil)
	if err != nil {
		return 0, err
	}
	return headerIndex(h).N, nil
}

// Session returns a session in any status (admin).
func (c *Client) Session(ctx context.Context, id string) (*Session, error) {
	var out Session
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/sessions/" + seg(id), admin: true, kind: read}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeSession revokes a session and its refresh token (admin).
func (c *Client) RevokeSession(ctx context.Context, id string) (uint64, error) {
	h, err := c.call(ctx, request{method: http.MethodDelete, path: "/v1/sessions/" + seg(id), admin: true, kind: idempotent}, nil)
	if err != nil {
		return 0, err
	}
	return headerIndex(h).N, nil
}

// RevokeRefresh revokes only a session's refresh token: the access token
// lives until it expires, then the session ends (admin).
func (c *Client) RevokeRefresh(ctx context.Context, id string) (uint64, error) {
	h, err := c.call(ctx, request{method: http.MethodDelete, path: "/v1/sessions/" + seg(id) + "/refresh", admin: true, kind: idempotent}, nil)
	if err != nil {
		return 0, err
	}
	return headerIndex(h).N, nil
}

type sessionsAnswer struct {
	Sessions []Session `json:"sessions"`
}

// UserSessions lists a user's active sessions, newest first (admin).
func (c *Client) UserSessions(ctx context.Context, userID string) ([]Session, error) {
	var out sessionsAnswer
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/users/" + seg(userID) + "/sessions", admin: true, kind: read}, &out)
	if err != nil {
		return nil, err
	}
	if out.Sessions == nil {
		out.Sessions = []Session{}
	}
	return out.Sessions, nil
}

type bulkRevokeWire struct {
	CreatedBefore *time.Time `json:"created_before,omitempty"`
	Apps          []string   `json:"apps,omitempty"`
}

// BulkRevoke revokes every session created before a time, optionally only
// of some apps, in one event (admin).
func (c *Client) BulkRevoke(ctx context.Context, req BulkRevokeRequest) (*Revoked, error) {
	body := bulkRevokeWire{Apps: req.Apps}
	if !req.CreatedBefore.IsZero() {
		t := req.CreatedBefore.UTC()
		body.CreatedBefore = &t
	}
	var out Revoked
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/sessions/revoke", body: body, admin: true, kind: idempotent}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ForceLogout revokes every session of a user, except req.Except (admin).
func (c *Client) ForceLogout(ctx context.Context, userID string, req ForceLogoutRequest) (*Revoked, error) {
	var out Revoked
	_, err := c.call(ctx, request{method: http.MethodDelete, path: "/v1/users/" + seg(userID) + "/sessions", body: req, admin: true, kind: idempotent}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// MySessions lists the active sessions of the access token's user, the
// caller's own marked Current (GET /v1/me/sessions).
func (c *Client) MySessions(ctx context.Context, accessToken string) ([]Session, error) {
	var out sessionsAnswer
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/me/sessions", token: accessToken, kind: read}, &out)
	if err != nil {
		return nil, err
	}
	if out.Sessions == nil {
		out.Sessions = []Session{}
	}
	return out.Sessions, nil
}

// EndMySession ends one of the caller's own sessions (DELETE
// /v1/me/sessions/{id}); a session of another user is not found.
func (c *Client) EndMySession(ctx context.Context, accessToken, sessionID string) (uint64, error) {
	h, err := c.call(ctx, request{method: http.MethodDelete, path: "/v1/me/sessions/" + seg(sessionID), token: accessToken, kind: idempotent}, nil)
	if err != nil {
		return 0, err
	}
	return headerIndex(h).N, nil
}

// EndMyOtherSessions signs the caller out everywhere else (DELETE
// /v1/me/sessions); includeCurrent ends the caller's session too.
func (c *Client) EndMyOtherSessions(ctx context.Context, accessToken string, includeCurrent bool) (*Revoked, error) {
	r := request{method: http.MethodDelete, path: "/v1/me/sessions", token: accessToken, kind: idempotent}
	if includeCurrent {
		r.query = url.Values{"include_current": {"true"}}
	}
	var out Revoked
	h, err := c.call(ctx, r, &out)
	if err != nil {
		return nil, err
	}
	if out.Index == 0 {
		out.Index = headerIndex(h).N
	}
	return &out, nil
}

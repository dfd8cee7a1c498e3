package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/node/password"
)

// Built-in users (the user rows of docs/api.md#endpoints). Passwords are
// checked against the password rules here and hashed by the node; they never
// reach a log.

const maxEmailLength = 254

// checkEmail accepts what looks like an address: one "@" with text on both
// sides, no whitespace or control characters, at most 254 bytes.
func checkEmail(v string) error {
	if v == "" || len(v) > maxEmailLength || !utf8.ValidString(v) {
		return badRequest("email must be 1–%d bytes of valid UTF-8", maxEmailLength)
	}
	local, domain, ok := strings.Cut(v, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return badRequest("email must look like name@domain")
	}
	for _, r := range v {
		if r <= ' ' || r == 0x7f {
			return badRequest("email must not contain spaces or control characters")
		}
	}
	return nil
}

func checkPassword(pw string) error {
	if err := password.CheckPolicy(pw); err != nil {
		return badRequest("password: %s", strings.TrimPrefix(err.Error(), "password: "))
	}
	return nil
}

type putUserRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	// Region is the user's home region (docs/regions.md); "" leaves it to
	// the user's first write.
	Region string `json:"region"`
}

type userJSON struct {
	UserID      string   `json:"user_id"`
	Email       string   `json:"email,omitempty"`
	HasPassword bool     `json:"has_password"`
	MaxSessions *int     `json:"max_sessions"`
	LockedUntil *apiTime `json:"locked_until"`
	CreatedAt   apiTime  `json:"created_at"`
	UpdatedAt   apiTime  `json:"updated_at"`
	// Region is the user's home region, shown in a cluster with regions.
	Region string `json:"region,omitempty"`
}

func toUserJSON(info node.UserInfo) userJSON {
	u := info.User
	out := userJSON{UserID: string(u.ID), Email: u.Email, HasPassword: u.PasswordHash != "",
		CreatedAt: apiTime(u.CreatedAt), UpdatedAt: apiTime(u.UpdatedAt), Region: info.Region}
	if u.HasLimit {
		m := u.MaxSessions
		out.MaxSessions = &m
	}
	if !info.LockedUntil.IsZero() {
		t := apiTime(info.LockedUntil.UnixNano())
		out.LockedUntil = &t
	}
	return out
}

type userChangeJSON struct {
	UserID  string `json:"user_id"`
	Revoked int    `json:"revoked"`
	Index   uint64 `json:"index"`
}

// GET /v1/users/:id (admin): the user's record (never the password hash).
func (s *Server) getUser(c echo.Context) error {
	user, err := userParam(c)
	if err != nil {
		return err
	}
	if err := s.readAt(c, groupScope(s.users.UserGroup(user))); err != nil {
		return err
	}
	info, ok := s.users.User(user)
	if !ok {
		return errUserNotFound
	}
	return c.JSON(http.StatusOK, toUserJSON(info))
}

var errUserNotFound = &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: "no such user"}

// PUT /v1/users/:id (admin): set email and password. A new user needs a
// password; an existing one keeps what is left out. Replacing a password
// counts as a password change for the policy.
func (s *Server) putUser(c echo.Context) error {
	user, err := userParam(c)
	if err != nil {
		return err
	}
	var req putUserRequest
	if err := bindJSON(c, &req, false); err != nil {
		return err
	}
	if req.Email == "" && req.Password == "" && req.Region == "" {
		return badRequest("email, password or region is required")
	}
	if req.Email != "" {
		if err := checkEmail(req.Email); err != nil {
			return err
		}
	}
	if req.Password != "" {
		if err := checkPassword(req.Password); err != nil {
			return err
		}
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	revoked, index, err := s.users.SetUser(ctx, node.SetUserRequest{UserID: user, Email: req.Email, Password: req.Password, Region: req.Region})
	if err != nil {
		return err
	}
	setIndex(c, index)
	return c.JSON(http.StatusOK, userChangeJSON{UserID: string(user), Revoked: revoked, Index: index.N})
}

// DELETE /v1/users/:id (admin): delete the user and revoke its sessions.
func (s *Server) deleteUser(c echo.Context) error {
	user, err := userParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	revoked, index, err := s.users.DeleteUser(ctx, user)
	if err != nil {
		if isNotFound(err) {
			return errUserNotFound
		}
		return err
	}
	setIndex(c, index)
	return c.JSON(http.StatusOK, userChangeJSON{UserID: string(user), Revoked: revoked, Index: index.N})
}

type putPasswordRequest struct {
	Password string `json:"password"`
	Reason   string `json:"reason"`
}

// PUT /v1/users/:id/password (admin): change or reset a password.
func (s *Server) putPassword(c echo.Context) error {
	user, err := userParam(c)
	if err != nil {
		return err
	}
	var req putPasswordRequest
	if err := bindJSON(c, &req, false); err != nil {
		return err
	}
	reason := events.ReasonPasswordChange
	switch req.Reason {
	case "", "change":
	case "reset":
		reason = events.ReasonPasswordReset
	default:
		return badRequest("reason must be change or reset")
	}
	if err := checkPassword(req.Password); err != nil {
		return err
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	revoked, index, err := s.users.SetPassword(ctx, user, req.Password, reason)
	if err != nil {
		if isNotFound(err) {
			return errUserNotFound
		}
		return err
	}
	setIndex(c, index)
	return c.JSON(http.StatusOK, userChangeJSON{UserID: string(user), Revoked: revoked, Index: index.N})
}

type limitsJSON struct {
	UserID      string `json:"user_id"`
	MaxSessions *int   `json:"max_sessions"`
	Index       uint64 `json:"index"`
}

// PUT /v1/users/:id/limits (admin): {"max_sessions": n} sets the user's own
// limit (0: unlimited), {"max_sessions": null} removes it.
func (s *Server) putLimits(c echo.Context) error {
	user, err := userParam(c)
	if err != nil {
		return err
	}
	var req struct {
		MaxSessions jsontext.Value `json:"max_sessions"` // "null" when given as null
	}
	if err := bindJSON(c, &req, false); err != nil {
		return err
	}
	var max *int
	switch raw := strings.TrimSpace(string(req.MaxSessions)); raw {
	case "":
		return badRequest("max_sessions is required (null removes the user's limit)")
	case "null":
	default:
		var n int
		if err := json.Unmarshal(req.MaxSessions, &n); err != nil || n < 0 || n > 10000 {
			return badRequest("max_sessions must be an integer between 0 and 10000, or null")
		}
		max = &n
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	index, err := s.users.SetUserLimit(ctx, user, max)
	if err != nil {
		return err
	}
	setIndex(c, index)
	return c.JSON(http.StatusOK, limitsJSON{UserID: string(user), MaxSessions: max, Index: index.N})
}

// POST /v1/users/:id/unlock (admin): clear a lockout.
func (s *Server) unlock(c echo.Context) error {
	user, err := userParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	index, err := s.users.Unlock(ctx, user)
	if err != nil {
		if isNotFound(err) {
			return errUserNotFound
		}
		return err
	}
	setIndex(c, index)
	return c.JSON(http.StatusOK, map[string]any{"user_id": string(user), "index": index.N})
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, fsm.ErrNotFound) }

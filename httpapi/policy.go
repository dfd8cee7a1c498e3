package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
)

// putPolicyRequest is the policy object (docs/logins.md#policy-settings).
// PUT takes the whole object: a field left out takes its default; refresh_ttl
// left out or null follows 1.5 × access_ttl (as it does when
// refresh_ttl_follows_access is true, so that a GET answer can be sent back
// as it is).
type putPolicyRequest struct {
	AccessTTL                   *string        `json:"access_ttl"`
	RefreshTTL                  *string        `json:"refresh_ttl"`
	RefreshTTLFollowsAccess     *bool          `json:"refresh_ttl_follows_access"`
	AbsoluteTTL                 *string        `json:"absolute_ttl"`
	IdleTimeout                 *string        `json:"idle_timeout"`
	SlidingRefresh              *bool          `json:"sliding_refresh"`
	RememberMeTTL               *string        `json:"remember_me_ttl"`
	MaxSessionsPerUser          *int           `json:"max_sessions_per_user"`
	AppMaxSessions              map[string]int `json:"app_max_sessions"`
	OnSessionLimit              *string        `json:"on_session_limit"`
	Lockout                     jsontext.Value `json:"lockout"`
	ForceLogoutOnPasswordChange *bool          `json:"force_logout_on_password_change"`
	RefreshReuseGrace           *string        `json:"refresh_reuse_grace"`
}

type putLockoutRequest struct {
	MaxFailures *int    `json:"max_failures"`
	Window      *string `json:"window"`
	Duration    *string `json:"duration"`
}

func parseDuration(field string, v *string, into *time.Duration) error {
	if v == nil {
		return nil
	}
	d, err := time.ParseDuration(*v)
	if err != nil {
		return badRequest("%s must be a Go duration such as 15m or 36h (got %q)", field, *v)
	}
	*into = d
	return nil
}

// policyFromRequest builds the policy a PUT asks for and checks it.
func policyFromRequest(req putPolicyRequest) (fsm.Policy, error) {
	p := fsm.DefaultPolicy()
	for _, f := range []struct {
		name string
		v    *string
		into *time.Duration
	}{
		{"access_ttl", req.AccessTTL, &p.AccessTTL},
		{"absolute_ttl", req.AbsoluteTTL, &p.AbsoluteTTL},
		{"idle_timeout", req.IdleTimeout, &p.IdleTimeout},
		{"remember_me_ttl", req.RememberMeTTL, &p.RememberMeTTL},
		{"refresh_reuse_grace", req.RefreshReuseGrace, &p.RefreshReuseGrace},
	} {
		if err := parseDuration(f.name, f.v, f.into); err != nil {
			return p, err
		}
	}
	follows := req.RefreshTTLFollowsAccess != nil && *req.RefreshTTLFollowsAccess
	if req.RefreshTTL != nil && !follows {
		if err := parseDuration("refresh_ttl", req.RefreshTTL, &p.RefreshTTL); err != nil {
			return p, err
		}
		if p.RefreshTTL <= 0 {
			return p, badRequest("refresh_ttl must be between 1m0s and 8760h0m0s (got %s)", *req.RefreshTTL)
		}
	}
	if req.SlidingRefresh != nil {
		p.SlidingRefresh = *req.SlidingRefresh
	}
	if req.MaxSessionsPerUser != nil {
		p.MaxSessionsPerUser = *req.MaxSessionsPerUser
	}
	for app, limit := range req.AppMaxSessions {
		if err := checkID("app_max_sessions", app); err != nil {
			return p, err
		}
		p.AppMaxSessions = append(p.AppMaxSessions, fsm.AppLimit{App: app, MaxSessions: limit})
	}
	slices.SortFunc(p.AppMaxSessions, func(a, b fsm.AppLimit) int { return strings.Compare(a.App, b.App) })
	if req.OnSessionLimit != nil {
		p.OnSessionLimit = *req.OnSessionLimit
	}
	if req.ForceLogoutOnPasswordChange != nil {
		p.ForceLogoutOnPasswordChange = *req.ForceLogoutOnPasswordChange
	}
	if len(req.Lockout) > 0 && string(req.Lockout) != "null" {
		var l putLockoutRequest
		if req.Lockout[0] != '{' {
			return p, badRequest("lockout must be an object with max_failures, window and duration")
		}
		if err := decodeJSON(req.Lockout, &l); err != nil {
			return p, badRequest("lockout: %s", strings.TrimPrefix(toAPIError(err).Message, "malformed JSON: "))
		}
		if l.MaxFailures != nil {
			p.Lockout.MaxFailures = *l.MaxFailures
		}
		if err := parseDuration("lockout.window", l.Window, &p.Lockout.Window); err != nil {
			return p, err
		}
		if err := parseDuration("lockout.duration", l.Duration, &p.Lockout.Duration); err != nil {
			return p, err
		}
	}
	if err := p.Validate(); err != nil {
		var pe *events.PolicyError
		if errors.As(err, &pe) {
			return p, badRequest("%s", pe.Error())
		}
		return p, badRequest("%s", err.Error())
	}
	return p, nil
}

// GET /v1/policy (admin).
func (s *Server) getPolicy(c echo.Context) error {
	if err := s.readAt(c, groupScope(s.policy.PolicyGroup())); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toPolicyJSON(s.policy.Policy()))
}

// PUT /v1/policy (admin): replace the policy (docs/logins.md#policy-settings).
// It applies to sessions created after it.
func (s *Server) putPolicy(c echo.Context) error {
	var req putPolicyRequest
	if err := bindJSON(c, &req, false); err != nil {
		return err
	}
	p, err := policyFromRequest(req)
	if err != nil {
		return err
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	index, err := s.policy.SetPolicy(ctx, p)
	if err != nil {
		return err
	}
	setIndex(c, index)
	out := toPolicyJSON(p)
	return c.JSON(http.StatusOK, struct {
		policyJSON
		Index uint64 `json:"index"`
	}{out, index.N})
}

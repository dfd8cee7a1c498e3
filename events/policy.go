package events

import (
	"fmt"
	"slices"
	"time"
)

// Policy holds the replicated lifetime, limit and lockout settings
// (docs/logins.md#policy-settings). It travels in PolicySet events and is part
// of the state machine's state: every node computes expiry times from the same
// policy and the event's time.
type Policy struct {
	AccessTTL time.Duration `msgpack:"access_ttl"`
	// RefreshTTL is the explicit refresh lifetime; 0 means it follows
	// 1.5 × AccessTTL (see EffectiveRefreshTTL).
	RefreshTTL                  time.Duration `msgpack:"refresh_ttl"`
	AbsoluteTTL                 time.Duration `msgpack:"absolute_ttl"`
	IdleTimeout                 time.Duration `msgpack:"idle_timeout"`
	SlidingRefresh              bool          `msgpack:"sliding_refresh"`
	RememberMeTTL               time.Duration `msgpack:"remember_me_ttl"`
	MaxSessionsPerUser          int           `msgpack:"max_sessions_per_user"`
	AppMaxSessions              []AppLimit    `msgpack:"app_max_sessions"`
	OnSessionLimit              string        `msgpack:"on_session_limit"`
	Lockout                     Lockout       `msgpack:"lockout"`
	ForceLogoutOnPasswordChange bool          `msgpack:"force_logout_on_password_change"`
	RefreshReuseGrace           time.Duration `msgpack:"refresh_reuse_grace"`
}

// AppLimit is the session limit of one app. Policy keeps them sorted by app.
type AppLimit struct {
	App         string `msgpack:"app"`
	MaxSessions int    `msgpack:"max"`
}

// Lockout is the brute-force lockout setting.
type Lockout struct {
	MaxFailures int           `msgpack:"max_failures"`
	Window      time.Duration `msgpack:"window"`
	Duration    time.Duration `msgpack:"duration"`
}

// What to do when a new session would go over a limit.
const (
	OnLimitDeny        = "deny"
	OnLimitEvictOldest = "evict_oldest"
)

// DefaultPolicy is the documented defaults (docs/logins.md#policy-settings).
func DefaultPolicy() Policy {
	return Policy{
		AccessTTL:                   15 * time.Minute,
		AbsoluteTTL:                 30 * 24 * time.Hour,
		RememberMeTTL:               30 * 24 * time.Hour,
		OnSessionLimit:              OnLimitDeny,
		Lockout:                     Lockout{MaxFailures: 5, Window: 15 * time.Minute, Duration: 15 * time.Minute},
		ForceLogoutOnPasswordChange: true,
	}
}

// RefreshFollowsAccess reports whether the refresh lifetime is derived from
// the access lifetime rather than set explicitly.
func (p Policy) RefreshFollowsAccess() bool { return p.RefreshTTL == 0 }

// EffectiveRefreshTTL is the refresh lifetime in force.
func (p Policy) EffectiveRefreshTTL() time.Duration {
	if p.RefreshTTL == 0 {
		return p.AccessTTL * 3 / 2
	}
	return p.RefreshTTL
}

// AppLimit is the limit of one app, 0 when it has none.
func (p Policy) AppLimit(app string) int {
	i, found := slices.BinarySearchFunc(p.AppMaxSessions, app, func(l AppLimit, app string) int {
		switch {
		case l.App < app:
			return -1
		case l.App > app:
			return 1
		}
		return 0
	})
	if !found {
		return 0
	}
	return p.AppMaxSessions[i].MaxSessions
}

// Policy ranges (docs/logins.md#policy-settings).
const (
	maxSessionLimit = 10000
	day             = 24 * time.Hour
)

// PolicyError names the setting that is out of range.
type PolicyError struct {
	Field   string
	Message string
}

func (e *PolicyError) Error() string { return e.Field + " " + e.Message }

func outOfRange(field string, d, lo, hi time.Duration) error {
	return &PolicyError{Field: field, Message: fmt.Sprintf("must be between %s and %s (got %s)", lo, hi, d)}
}

// Validate checks every setting against the documented ranges
// (docs/logins.md#policy-settings). The error is a *PolicyError naming the
// field as the API spells it.
func (p Policy) Validate() error {
	check := func(field string, d, lo, hi time.Duration) error {
		if d < lo || d > hi {
			return outOfRange(field, d, lo, hi)
		}
		return nil
	}
	if err := check("access_ttl", p.AccessTTL, time.Minute, 129600*time.Minute); err != nil {
		return err
	}
	if err := check("refresh_ttl", p.EffectiveRefreshTTL(), time.Minute, 525600*time.Minute); err != nil {
		return err
	}
	if err := check("absolute_ttl", p.AbsoluteTTL, time.Minute, 365*day); err != nil {
		return err
	}
	if p.IdleTimeout != 0 {
		if err := check("idle_timeout", p.IdleTimeout, time.Minute, 30*day); err != nil {
			return &PolicyError{Field: "idle_timeout", Message: "must be 0 (off) or between 1m0s and 720h0m0s (got " + p.IdleTimeout.String() + ")"}
		}
	}
	if err := check("remember_me_ttl", p.RememberMeTTL, time.Hour, 365*day); err != nil {
		return err
	}
	if p.MaxSessionsPerUser < 0 || p.MaxSessionsPerUser > maxSessionLimit {
		return &PolicyError{Field: "max_sessions_per_user", Message: fmt.Sprintf("must be between 0 and %d (got %d)", maxSessionLimit, p.MaxSessionsPerUser)}
	}
	for i, l := range p.AppMaxSessions {
		if l.MaxSessions < 1 || l.MaxSessions > maxSessionLimit {
			return &PolicyError{Field: "app_max_sessions." + l.App, Message: fmt.Sprintf("must be between 1 and %d (got %d)", maxSessionLimit, l.MaxSessions)}
		}
		if l.App == "" {
			return &PolicyError{Field: "app_max_sessions", Message: "has an empty app id"}
		}
		if i > 0 && p.AppMaxSessions[i-1].App >= l.App {
			return &PolicyError{Field: "app_max_sessions", Message: "must be sorted by app without duplicates"}
		}
	}
	if p.OnSessionLimit != OnLimitDeny && p.OnSessionLimit != OnLimitEvictOldest {
		return &PolicyError{Field: "on_session_limit", Message: fmt.Sprintf("must be %q or %q (got %q)", OnLimitDeny, OnLimitEvictOldest, p.OnSessionLimit)}
	}
	if p.Lockout.MaxFailures < 0 || p.Lockout.MaxFailures > 1000 {
		return &PolicyError{Field: "lockout.max_failures", Message: fmt.Sprintf("must be between 0 (off) and 1000 (got %d)", p.Lockout.MaxFailures)}
	}
	if p.Lockout.MaxFailures > 0 {
		if err := check("lockout.window", p.Lockout.Window, time.Second, 30*day); err != nil {
			return err
		}
		if err := check("lockout.duration", p.Lockout.Duration, time.Second, 30*day); err != nil {
			return err
		}
	}
	if err := check("refresh_reuse_grace", p.RefreshReuseGrace, 0, 5*time.Minute); err != nil {
		return err
	}
	return nil
}

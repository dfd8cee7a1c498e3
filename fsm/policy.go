package fsm

import "time"

// Policy holds the replicated lifetime and limit settings of SPEC §3. It is
// part of the state: every node computes expiry times from the same policy
// and the event's time.
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

// DefaultPolicy is SPEC §3's defaults.
func DefaultPolicy() Policy {
	return Policy{
		AccessTTL:                   15 * time.Minute,
		AbsoluteTTL:                 30 * 24 * time.Hour,
		RememberMeTTL:               30 * 24 * time.Hour,
		OnSessionLimit:              "deny",
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

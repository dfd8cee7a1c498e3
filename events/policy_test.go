package events

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPolicy_DefaultsAreValidAndMatchTheSpec(t *testing.T) {
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatalf("DefaultPolicy().Validate() = %v", err)
	}
	want := Policy{
		AccessTTL:                   15 * time.Minute,
		AbsoluteTTL:                 30 * day,
		RememberMeTTL:               30 * day,
		OnSessionLimit:              "deny",
		Lockout:                     Lockout{MaxFailures: 5, Window: 15 * time.Minute, Duration: 15 * time.Minute},
		ForceLogoutOnPasswordChange: true,
	}
	if p.AccessTTL != want.AccessTTL || p.RefreshTTL != 0 || p.AbsoluteTTL != want.AbsoluteTTL || p.IdleTimeout != 0 ||
		p.SlidingRefresh || p.RememberMeTTL != want.RememberMeTTL || p.MaxSessionsPerUser != 0 || len(p.AppMaxSessions) != 0 ||
		p.OnSessionLimit != want.OnSessionLimit || p.Lockout != want.Lockout || !p.ForceLogoutOnPasswordChange || p.RefreshReuseGrace != 0 {
		t.Errorf("DefaultPolicy() = %+v, want %+v", p, want)
	}
	if !p.RefreshFollowsAccess() || p.EffectiveRefreshTTL() != 22*time.Minute+30*time.Second {
		t.Errorf("refresh follows %v, effective %s, want 1.5 × 15m", p.RefreshFollowsAccess(), p.EffectiveRefreshTTL())
	}
}

// wantField checks that err is a *PolicyError naming field.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	var pe *PolicyError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T), want a *PolicyError naming %s", err, err, field)
	}
	if pe.Field != field {
		t.Errorf("error names %q, want %q (%v)", pe.Field, field, err)
	}
	if !strings.HasPrefix(err.Error(), field+" ") {
		t.Errorf("message %q does not start with the field", err.Error())
	}
}

func TestPolicy_ValidateBounds(t *testing.T) {
	type bound struct {
		field   string
		set     func(p *Policy, d time.Duration)
		lo, hi  time.Duration
		zeroOff bool // 0 is allowed: off, or for refresh_ttl "follows access_ttl"
	}
	bounds := []bound{
		{"access_ttl", func(p *Policy, d time.Duration) { p.AccessTTL = d; p.RefreshTTL = time.Hour }, time.Minute, 129600 * time.Minute, false},
		{"refresh_ttl", func(p *Policy, d time.Duration) { p.RefreshTTL = d }, time.Minute, 525600 * time.Minute, true},
		{"absolute_ttl", func(p *Policy, d time.Duration) { p.AbsoluteTTL = d }, time.Minute, 365 * day, false},
		{"idle_timeout", func(p *Policy, d time.Duration) { p.IdleTimeout = d }, time.Minute, 30 * day, true},
		{"remember_me_ttl", func(p *Policy, d time.Duration) { p.RememberMeTTL = d }, time.Hour, 365 * day, false},
		{"refresh_reuse_grace", func(p *Policy, d time.Duration) { p.RefreshReuseGrace = d }, 0, 5 * time.Minute, true},
		{"lockout.window", func(p *Policy, d time.Duration) { p.Lockout.Window = d }, time.Second, 30 * day, false},
		{"lockout.duration", func(p *Policy, d time.Duration) { p.Lockout.Duration = d }, time.Second, 30 * day, false},
	}
	for _, b := range bounds {
		t.Run(b.field, func(t *testing.T) {
			with := func(d time.Duration) Policy {
				p := DefaultPolicy()
				b.set(&p, d)
				return p
			}
			for _, d := range []time.Duration{b.lo, b.hi, (b.lo + b.hi) / 2} {
				if err := with(d).Validate(); err != nil {
					t.Errorf("%s = %s: %v", b.field, d, err)
				}
			}
			bad := []time.Duration{b.hi + 1, b.hi + time.Minute, -time.Minute}
			if b.lo > 0 {
				bad = append(bad, b.lo-1, 0)
			}
			if b.zeroOff {
				if err := with(0).Validate(); err != nil {
					t.Errorf("%s = 0: %v", b.field, err)
				}
				if b.lo > 0 {
					bad = bad[:len(bad)-1] // 0 is allowed
				}
			}
			for _, d := range bad {
				wantField(t, with(d).Validate(), b.field)
			}
		})
	}
}

func TestPolicy_RefreshTTLFollowingAccessIsCheckedAtItsEffectiveValue(t *testing.T) {
	p := DefaultPolicy()
	p.AccessTTL = 129600 * time.Minute // 90 days; refresh follows: 135 days
	if err := p.Validate(); err != nil {
		t.Errorf("largest access_ttl with refresh following: %v", err)
	}
	if p.EffectiveRefreshTTL() != 194400*time.Minute {
		t.Errorf("effective refresh %s", p.EffectiveRefreshTTL())
	}
	p.AccessTTL = time.Minute // refresh follows: 1m30s
	if err := p.Validate(); err != nil {
		t.Errorf("smallest access_ttl with refresh following: %v", err)
	}
	p.RefreshTTL = 2 * time.Minute
	if p.RefreshFollowsAccess() || p.EffectiveRefreshTTL() != 2*time.Minute {
		t.Errorf("an explicit refresh_ttl: follows %v, effective %s", p.RefreshFollowsAccess(), p.EffectiveRefreshTTL())
	}
}

func TestPolicy_ValidateCountsAndChoices(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(p *Policy)
		field string // "" for valid
	}{
		{"no user limit", func(p *Policy) { p.MaxSessionsPerUser = 0 }, ""},
		{"largest user limit", func(p *Policy) { p.MaxSessionsPerUser = 10000 }, ""},
		{"user limit too large", func(p *Policy) { p.MaxSessionsPerUser = 10001 }, "max_sessions_per_user"},
		{"negative user limit", func(p *Policy) { p.MaxSessionsPerUser = -1 }, "max_sessions_per_user"},
		{"deny", func(p *Policy) { p.OnSessionLimit = OnLimitDeny }, ""},
		{"evict_oldest", func(p *Policy) { p.OnSessionLimit = OnLimitEvictOldest }, ""},
		{"empty on_session_limit", func(p *Policy) { p.OnSessionLimit = "" }, "on_session_limit"},
		{"unknown on_session_limit", func(p *Policy) { p.OnSessionLimit = "Deny" }, "on_session_limit"},
		{"lockout off", func(p *Policy) { p.Lockout.MaxFailures = 0 }, ""},
		{"lockout off ignores its times", func(p *Policy) { p.Lockout = Lockout{} }, ""},
		{"lockout at the first failure", func(p *Policy) { p.Lockout.MaxFailures = 1 }, ""},
		{"negative max_failures", func(p *Policy) { p.Lockout.MaxFailures = -1 }, "lockout.max_failures"},
		{"max_failures too large", func(p *Policy) { p.Lockout.MaxFailures = 1001 }, "lockout.max_failures"},
		{"lockout on without a window", func(p *Policy) { p.Lockout.Window = 0 }, "lockout.window"},
		{"sliding and forced logout off", func(p *Policy) { p.SlidingRefresh = true; p.ForceLogoutOnPasswordChange = false }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultPolicy()
			tc.edit(&p)
			err := p.Validate()
			if tc.field == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want valid", err)
				}
				return
			}
			wantField(t, err, tc.field)
		})
	}
}

func TestPolicy_ValidateAppLimits(t *testing.T) {
	cases := []struct {
		name   string
		limits []AppLimit
		valid  bool
	}{
		{"none", nil, true},
		{"sorted", []AppLimit{{"admin", 1}, {"mobile", 10000}, {"web", 3}}, true},
		{"unsorted", []AppLimit{{"web", 3}, {"mobile", 2}}, false},
		{"duplicate", []AppLimit{{"web", 3}, {"web", 2}}, false},
		{"zero", []AppLimit{{"web", 0}}, false},
		{"negative", []AppLimit{{"web", -1}}, false},
		{"too large", []AppLimit{{"web", 10001}}, false},
		{"empty app id", []AppLimit{{"", 1}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultPolicy()
			p.AppMaxSessions = tc.limits
			err := p.Validate()
			if tc.valid {
				if err != nil {
					t.Errorf("Validate() = %v, want valid", err)
				}
				return
			}
			var pe *PolicyError
			if !errors.As(err, &pe) || !strings.HasPrefix(pe.Field, "app_max_sessions") {
				t.Fatalf("Validate() = %v, want a *PolicyError naming app_max_sessions", err)
			}
		})
	}
}

func TestPolicy_AppLimitLooksUpOneApp(t *testing.T) {
	p := DefaultPolicy()
	p.AppMaxSessions = []AppLimit{{"admin", 1}, {"mobile", 5}, {"web", 3}}
	for app, want := range map[string]int{"admin": 1, "mobile": 5, "web": 3, "default": 0, "": 0, "zzz": 0} {
		if got := p.AppLimit(app); got != want {
			t.Errorf("AppLimit(%q) = %d, want %d", app, got, want)
		}
	}
}

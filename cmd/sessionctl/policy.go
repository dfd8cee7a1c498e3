package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sessiond/sessiond/httpapi/client"
)

func (a *app) policyCommand() *cobra.Command {
	return group("policy", "Show or change the replicated policy (lifetimes, limits, lockout)",
		a.policyGet(), a.policySet())
}

func (a *app) policyGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get",
		Short: "Show the policy in force",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				p, err := c.Policy(ctx)
				if err != nil {
					return err
				}
				return a.printPolicy(p)
			})
		},
	}
}

func (a *app) printPolicy(p *client.Policy) error {
	if a.json() {
		return a.printJSON(p)
	}
	refresh := p.RefreshTTL.String()
	if p.RefreshTTLFollowsAccess {
		refresh += " (1.5 × access_ttl)"
	}
	var apps []string
	for _, app := range slices.Sorted(maps.Keys(p.AppMaxSessions)) {
		apps = append(apps, app+"="+strconv.Itoa(p.AppMaxSessions[app]))
	}
	pairs := []string{
		"access_ttl", p.AccessTTL.String(),
		"refresh_ttl", refresh,
		"absolute_ttl", p.AbsoluteTTL.String(),
		"idle_timeout", p.IdleTimeout.String(),
		"sliding_refresh", strconv.FormatBool(p.SlidingRefresh),
		"remember_me_ttl", p.RememberMeTTL.String(),
		"max_sessions_per_user", strconv.Itoa(p.MaxSessionsPerUser),
		"app_max_sessions", orDash(strings.Join(apps, " ")),
		"on_session_limit", p.OnSessionLimit,
		"lockout.max_failures", strconv.Itoa(p.Lockout.MaxFailures),
		"lockout.window", p.Lockout.Window.String(),
		"lockout.duration", p.Lockout.Duration.String(),
		"force_logout_on_password_change", strconv.FormatBool(p.ForceLogoutOnPasswordChange),
		"refresh_reuse_grace", p.RefreshReuseGrace.String(),
	}
	if p.Index != 0 {
		pairs = append(pairs, "index", strconv.FormatUint(p.Index, 10))
	}
	return a.fields(pairs...)
}

// policyFlags are the settings policy set can change, one flag each.
type policyFlags struct {
	accessTTL, absoluteTTL, idleTimeout, rememberMeTTL, reuseGrace time.Duration
	lockoutWindow, lockoutDuration                                 time.Duration
	refreshTTL                                                     string
	sliding, forceLogout                                           bool
	maxPerUser, lockoutFailures                                    int
	appLimits                                                      []string
	onLimit                                                        string
}

func (pf *policyFlags) register(f *pflag.FlagSet) {
	f.DurationVar(&pf.accessTTL, "access-ttl", 0, "access token lifetime (1m – 2160h)")
	f.StringVar(&pf.refreshTTL, "refresh-ttl", "", `refresh token lifetime (1m – 8760h), or "follow" for 1.5 × access-ttl`)
	f.DurationVar(&pf.absoluteTTL, "absolute-ttl", 0, "longest life of a session (1m – 8760h)")
	f.DurationVar(&pf.idleTimeout, "idle-timeout", 0, "longest time between two uses (0: off)")
	f.BoolVar(&pf.sliding, "sliding-refresh", false, "each refresh restarts refresh-ttl")
	f.DurationVar(&pf.rememberMeTTL, "remember-me-ttl", 0, "refresh and absolute lifetime of remember-me sessions")
	f.IntVar(&pf.maxPerUser, "max-sessions-per-user", 0, "global session limit per user (0: unlimited)")
	f.StringArrayVar(&pf.appLimits, "app-max-sessions", nil, "APP=N session limit per app; APP=0 removes it (repeatable)")
	f.StringVar(&pf.onLimit, "on-session-limit", "", "deny or evict_oldest")
	f.IntVar(&pf.lockoutFailures, "lockout-max-failures", 0, "failed logins that lock an account (0: off)")
	f.DurationVar(&pf.lockoutWindow, "lockout-window", 0, "window in which failures count")
	f.DurationVar(&pf.lockoutDuration, "lockout-duration", 0, "how long a lockout lasts")
	f.BoolVar(&pf.forceLogout, "force-logout-on-password-change", false, "revoke a user's sessions when its password changes")
	f.DurationVar(&pf.reuseGrace, "refresh-reuse-grace", 0, "time a rotated refresh token may still be used (0: off, at most 5m)")
}

// apply changes p as the flags given say; it reports whether any was.
func (pf *policyFlags) apply(f *pflag.FlagSet, p *client.Policy) (bool, error) {
	changed := false
	set := func(name string, do func()) {
		if f.Changed(name) {
			do()
			changed = true
		}
	}
	set("access-ttl", func() { p.AccessTTL = pf.accessTTL })
	set("absolute-ttl", func() { p.AbsoluteTTL = pf.absoluteTTL })
	set("idle-timeout", func() { p.IdleTimeout = pf.idleTimeout })
	set("sliding-refresh", func() { p.SlidingRefresh = pf.sliding })
	set("remember-me-ttl", func() { p.RememberMeTTL = pf.rememberMeTTL })
	set("max-sessions-per-user", func() { p.MaxSessionsPerUser = pf.maxPerUser })
	set("on-session-limit", func() { p.OnSessionLimit = pf.onLimit })
	set("lockout-max-failures", func() { p.Lockout.MaxFailures = pf.lockoutFailures })
	set("lockout-window", func() { p.Lockout.Window = pf.lockoutWindow })
	set("lockout-duration", func() { p.Lockout.Duration = pf.lockoutDuration })
	set("force-logout-on-password-change", func() { p.ForceLogoutOnPasswordChange = pf.forceLogout })
	set("refresh-reuse-grace", func() { p.RefreshReuseGrace = pf.reuseGrace })
	if f.Changed("refresh-ttl") {
		changed = true
		if pf.refreshTTL == "follow" {
			p.RefreshTTLFollowsAccess = true
		} else {
			d, err := time.ParseDuration(pf.refreshTTL)
			if err != nil {
				return false, usagef(`--refresh-ttl takes a duration or "follow", not %q`, pf.refreshTTL)
			}
			p.RefreshTTL, p.RefreshTTLFollowsAccess = d, false
		}
	}
	if f.Changed("app-max-sessions") {
		changed = true
		limits := maps.Clone(p.AppMaxSessions)
		if limits == nil {
			limits = map[string]int{}
		}
		for _, kv := range pf.appLimits {
			app, n, ok := strings.Cut(kv, "=")
			limit, err := strconv.Atoi(n)
			if !ok || app == "" || err != nil || limit < 0 {
				return false, usagef("--app-max-sessions takes APP=N, not %q", kv)
			}
			if limit == 0 {
				delete(limits, app)
			} else {
				limits[app] = limit
			}
		}
		p.AppMaxSessions = limits
	}
	return changed, nil
}

func (a *app) policySet() *cobra.Command {
	var pf policyFlags
	var file string
	cmd := &cobra.Command{
		Use:   "set [--SETTING VALUE]... | --file policy.json",
		Short: "Change policy settings, or replace the policy from a file",
		Long: `Change the policy. With flags, the policy in force is fetched, the settings given
are changed and the whole policy is put back (the API replaces it as a whole);
settings not given keep their values. Two administrators changing the policy at
the same moment may overwrite each other's change.

With --file (- for standard input) the file's JSON object is sent as it is: a
setting left out of it takes its default.

The change applies to sessions created after it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			flags := cmd.Flags()
			if file != "" {
				others := false
				flags.Visit(func(f *pflag.Flag) {
					others = others || f.Name != "file" && cmd.InheritedFlags().Lookup(f.Name) == nil
				})
				if others {
					return usagef("--file replaces the whole policy: give it alone")
				}
				raw, err := a.readFile(file)
				if err != nil {
					return err
				}
				return a.call(cmd, func(ctx context.Context, c *client.Client) error {
					p, err := c.SetPolicyJSON(ctx, raw)
					if err != nil {
						return err
					}
					return a.printPolicy(p)
				})
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				p, err := c.Policy(ctx)
				if err != nil {
					return err
				}
				changed, err := pf.apply(flags, p)
				if err != nil {
					return err
				}
				if !changed {
					return usagef("give at least one setting to change, or --file (see --help)")
				}
				p, err = c.SetPolicy(ctx, *p)
				if err != nil {
					return err
				}
				return a.printPolicy(p)
			})
		},
	}
	pf.register(cmd.Flags())
	cmd.Flags().StringVar(&file, "file", "", "replace the policy with this JSON file (- for standard input)")
	return cmd
}

func (a *app) readFile(name string) (json.RawMessage, error) {
	var raw []byte
	var err error
	if name == "-" {
		raw, err = io.ReadAll(io.LimitReader(a.stdin, 64<<10))
	} else {
		raw, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("policy file: %w", err)
	}
	if !json.Valid(raw) {
		return nil, usagef("policy file %s is not valid JSON", name)
	}
	return raw, nil
}

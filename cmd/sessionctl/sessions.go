package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/httpapi/client"
)

// group is a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(subs...)
	return cmd
}

func (a *app) sessionsCommand() *cobra.Command {
	return group("sessions", "Create, inspect and revoke sessions",
		a.sessionsCreate(), a.sessionsGet(), a.sessionsList(), a.sessionsRevoke(),
		a.sessionsLogoutUser(), a.sessionsRevokeAll())
}

func (a *app) sessionsCreate() *cobra.Command {
	var req client.CreateSessionRequest
	var attrs []string
	var label string
	cmd := &cobra.Command{
		Use:   "create --user USER [--app APP] [--scope S]... [--attr K=V]... [--remember-me]",
		Short: "Create a session for a user without a login (impersonation); prints its tokens",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.UserID == "" {
				return usagef("--user is required")
			}
			if len(attrs) > 0 {
				req.Attributes = map[string]string{}
				for _, kv := range attrs {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return usagef("--attr takes KEY=VALUE, not %q", kv)
					}
					req.Attributes[k] = v
				}
			}
			if label != "" {
				req.Device = &client.Device{Label: label}
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				tok, err := c.CreateSession(ctx, req)
				if err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(tok)
				}
				return a.fields(
					"SESSION", tok.SessionID,
					"USER", tok.UserID,
					"ACCESS TOKEN", tok.AccessToken,
					"REFRESH TOKEN", tok.RefreshToken,
					"ACCESS EXPIRES", formatTime(tok.AccessExpiresAt),
					"REFRESH EXPIRES", formatTime(tok.RefreshExpiresAt),
					"EXPIRES", formatTime(tok.ExpiresAt),
					"INDEX", fmt.Sprint(tok.Index),
				)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.UserID, "user", "", "user id (required)")
	f.StringVar(&req.App, "app", "", `application id (default "default")`)
	f.StringArrayVar(&req.Scopes, "scope", nil, "scope (repeatable)")
	f.StringArrayVar(&attrs, "attr", nil, "attribute KEY=VALUE (repeatable)")
	f.BoolVar(&req.RememberMe, "remember-me", false, "a remember-me session (remember_me_ttl lifetime)")
	f.StringVar(&label, "label", "", "device label")
	return cmd
}

func (a *app) sessionsGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get SESSION",
		Short: "Show a session in any status",
		Args:  exactArgs("SESSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				s, err := c.Session(ctx, args[0])
				if err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(s)
				}
				return a.printSession(s)
			})
		},
	}
}

func (a *app) printSession(s *client.Session) error {
	var attrs []string
	for _, k := range slices.Sorted(maps.Keys(s.Attributes)) {
		attrs = append(attrs, k+"="+s.Attributes[k])
	}
	pairs := []string{
		"SESSION", s.SessionID,
		"USER", s.UserID,
		"APP", s.App,
		"METHOD", s.AuthMethod,
		"STATUS", s.Status,
		"CREATED", formatTime(s.CreatedAt),
		"LAST SEEN", formatTime(s.LastSeenAt),
		"ACCESS EXPIRES", formatTime(s.AccessExpiresAt),
		"REFRESH EXPIRES", formatTime(s.RefreshExpiresAt),
		"EXPIRES", formatTime(s.ExpiresAt),
		"REMEMBER ME", formatBool(s.RememberMe),
		"SCOPES", orDash(strings.Join(s.Scopes, " ")),
		"ATTRIBUTES", orDash(strings.Join(attrs, " ")),
		"DEVICE", device(s.Device),
	}
	if s.RevokedAt != nil {
		pairs = append(pairs, "REVOKED", formatTime(*s.RevokedAt)+" ("+orDash(s.RevokeReason)+")")
	}
	return a.fields(pairs...)
}

func device(d client.Device) string {
	var parts []string
	for _, p := range []string{d.Label, d.IP, d.UserAgent} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return orDash(strings.Join(parts, ", "))
}

func (a *app) sessionsList() *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "list --user USER",
		Short: "List a user's active sessions, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if user == "" {
				return usagef("--user is required")
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.UserSessions(ctx, user)
				if err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(map[string]any{"sessions": list})
				}
				rows := make([]string, 0, len(list))
				for _, s := range list {
					rows = append(rows, strings.Join([]string{s.SessionID, s.App, s.AuthMethod,
						formatTime(s.CreatedAt), formatTime(s.LastSeenAt), formatTime(s.ExpiresAt), device(s.Device)}, "\t"))
				}
				return a.table("SESSION\tAPP\tMETHOD\tCREATED\tLAST SEEN\tEXPIRES\tDEVICE", rows)
			})
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "user id (required)")
	return cmd
}

func (a *app) sessionsRevoke() *cobra.Command {
	var refreshOnly bool
	cmd := &cobra.Command{
		Use:   "revoke SESSION [--refresh-only]",
		Short: "Revoke a session, or only its refresh token",
		Args:  exactArgs("SESSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				revoke, what := c.RevokeSession, "session"
				if refreshOnly {
					revoke, what = c.RevokeRefresh, "refresh_token"
				}
				index, err := revoke(ctx, args[0])
				if err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(map[string]any{"session_id": args[0], "revoked": what, "index": index})
				}
				if refreshOnly {
					_, err = fmt.Fprintf(a.stdout, "revoked the refresh token of session %s\n", args[0])
				} else {
					_, err = fmt.Fprintf(a.stdout, "revoked session %s\n", args[0])
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&refreshOnly, "refresh-only", false, "revoke only the refresh token: the access token lives until it expires")
	return cmd
}

func (a *app) sessionsLogoutUser() *cobra.Command {
	var req client.ForceLogoutRequest
	cmd := &cobra.Command{
		Use:   "logout-user USER [--reason REASON] [--except SESSION]",
		Short: "Revoke every session of a user (force logout)",
		Args:  exactArgs("USER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				r, err := c.ForceLogout(ctx, args[0], req)
				if err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(r)
				}
				_, err = fmt.Fprintf(a.stdout, "revoked %s of %s\n", plural(r.Revoked, "session"), args[0])
				return err
			})
		},
	}
	cmd.Flags().StringVar(&req.Reason, "reason", client.ReasonAdmin, "admin, password_change, password_reset or user_deleted")
	cmd.Flags().StringVar(&req.Except, "except", "", "a session to keep")
	return cmd
}

func (a *app) sessionsRevokeAll() *cobra.Command {
	var before string
	var apps []string
	cmd := &cobra.Command{
		Use:   "revoke-all [--before TIME] [--app APP]...",
		Short: "Revoke every session created before a time (default now), optionally only of some apps",
		Long: `Revoke every session created before a time ("sign everyone out"), in one event.

--before takes an RFC 3339 time (2025-01-31T12:00:00Z) or a Go duration meaning
that long ago (24h); without it every session created so far is revoked.
--app limits the revocation to the named apps.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := client.BulkRevokeRequest{Apps: apps}
			if before != "" {
				t, err := parseBefore(before, time.Now())
				if err != nil {
					return err
				}
				req.CreatedBefore = t
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				r, err := c.BulkRevoke(ctx, req)
				if err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(r)
				}
				_, err = fmt.Fprintf(a.stdout, "revoked %s\n", plural(r.Revoked, "session"))
				return err
			})
		},
	}
	cmd.Flags().StringVar(&before, "before", "", "revoke sessions created before this RFC 3339 time, or this long ago (a Go duration)")
	cmd.Flags().StringArrayVar(&apps, "app", nil, "only sessions of this app (repeatable)")
	return cmd
}

func parseBefore(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("--before takes an RFC 3339 time or a duration such as 24h, not %q", v)
}

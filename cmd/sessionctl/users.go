package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/httpapi/client"
)

func (a *app) usersCommand() *cobra.Command {
	return group("users", "Manage built-in users: credentials, limits, lockouts",
		a.usersSet(), a.usersGet(), a.usersPassword(), a.usersLimits(), a.usersUnlock(), a.usersDelete())
}

func (a *app) usersSet() *cobra.Command {
	var email, region string
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "set USER [--email EMAIL] [--password-stdin] [--region REGION]",
		Short: "Create a user or change its email and password",
		Long: `Create a user or change its email and password. A new user needs a password.
The password is read from standard input (its first line), never from a flag:

  printf '%s\n' "$PASSWORD" | sessionctl users set alice --email alice@example.com --password-stdin

In a cluster with regions, --region sets the user's home region, whose Raft
group holds the user's sessions and credentials; without it the home is the
region of the node that takes the user's first write. A region the cluster
lacks is a bad request; a user homed elsewhere already is a conflict.`,
		Args: exactArgs("USER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if email == "" && !fromStdin && region == "" {
				return usagef("give --email, --password-stdin, --region, or several of them")
			}
			req := client.SetUserRequest{Email: email, Region: region}
			if fromStdin {
				pw, err := a.readSecret()
				if err != nil {
					return err
				}
				req.Password = pw
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				ch, err := c.SetUser(ctx, args[0], req)
				if err != nil {
					return err
				}
				return a.printUserChange(ch, "set")
			})
		},
	}
	cmd.Flags().StringVar(&email, "email", "", "email address")
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from standard input")
	cmd.Flags().StringVar(&region, "region", "", "the user's home region (a cluster with regions)")
	return cmd
}

func (a *app) printUserChange(ch *client.UserChange, what string) error {
	if a.json() {
		return a.printJSON(ch)
	}
	msg := fmt.Sprintf("user %s %s", ch.UserID, what)
	if ch.Revoked > 0 {
		msg += fmt.Sprintf(" (%s revoked)", plural(ch.Revoked, "session"))
	}
	_, err := fmt.Fprintln(a.stdout, msg)
	return err
}

func (a *app) usersGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get USER",
		Short: "Show a user (never its password)",
		Args:  exactArgs("USER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				u, err := c.User(ctx, args[0])
				if err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(u)
				}
				limit := "policy default"
				if u.MaxSessions != nil {
					limit = fmt.Sprint(*u.MaxSessions)
				}
				locked := "no"
				if u.LockedUntil != nil {
					locked = "until " + formatTime(*u.LockedUntil)
				}
				password := "not set"
				if u.HasPassword {
					password = "set"
				}
				pairs := []string{
					"USER", u.UserID,
					"EMAIL", orDash(u.Email),
				}
				if u.Region != "" { // a cluster with regions
					pairs = append(pairs, "REGION", u.Region)
				}
				return a.fields(append(pairs,
					"PASSWORD", password,
					"MAX SESSIONS", limit,
					"LOCKED", locked,
					"CREATED", formatTime(u.CreatedAt),
					"UPDATED", formatTime(u.UpdatedAt),
				)...)
			})
		},
	}
}

func (a *app) usersPassword() *cobra.Command {
	var reason string
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "password USER --reason change|reset --password-stdin",
		Short: "Change or reset a user's password (read from standard input)",
		Long: `Change or reset a user's password, read from standard input (its first line).
With force_logout_on_password_change (the default) the user's sessions are revoked.`,
		Args: exactArgs("USER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !fromStdin {
				return usagef("--password-stdin is required: passwords are never taken from flags")
			}
			if reason != client.PasswordChange && reason != client.PasswordReset {
				return usagef("--reason must be change or reset, not %q", reason)
			}
			pw, err := a.readSecret()
			if err != nil {
				return err
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				ch, err := c.SetPassword(ctx, args[0], pw, reason)
				if err != nil {
					return err
				}
				done := map[string]string{client.PasswordChange: "password changed", client.PasswordReset: "password reset"}
				return a.printUserChange(ch, done[reason])
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", client.PasswordChange, "change or reset")
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func (a *app) usersLimits() *cobra.Command {
	var maxSessions int
	var clear bool
	cmd := &cobra.Command{
		Use:   "limits USER (--max N | --clear)",
		Short: "Set a user's own session limit (0: unlimited), or clear it to follow the policy",
		Args:  exactArgs("USER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			hasMax := cmd.Flags().Changed("max")
			if hasMax == clear {
				return usagef("give exactly one of --max N and --clear")
			}
			var limit *int
			if hasMax {
				limit = &maxSessions
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				l, err := c.SetUserLimit(ctx, args[0], limit)
				if err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(l)
				}
				if l.MaxSessions == nil {
					_, err = fmt.Fprintf(a.stdout, "user %s follows the policy's session limit\n", l.UserID)
				} else {
					_, err = fmt.Fprintf(a.stdout, "user %s may hold %d sessions (0: unlimited)\n", l.UserID, *l.MaxSessions)
				}
				return err
			})
		},
	}
	cmd.Flags().IntVar(&maxSessions, "max", 0, "the user's session limit (0: unlimited)")
	cmd.Flags().BoolVar(&clear, "clear", false, "remove the user's own limit")
	return cmd
}

func (a *app) usersUnlock() *cobra.Command {
	return &cobra.Command{
		Use:   "unlock USER",
		Short: "Clear a user's login lockout",
		Args:  exactArgs("USER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				index, err := c.Unlock(ctx, args[0])
				if err != nil {
					return err
				}
				if a.json() {
					return a.printJSON(map[string]any{"user_id": args[0], "index": index})
				}
				_, err = fmt.Fprintf(a.stdout, "user %s unlocked\n", args[0])
				return err
			})
		},
	}
}

func (a *app) usersDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete USER",
		Short: "Delete a user and revoke its sessions",
		Args:  exactArgs("USER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				ch, err := c.DeleteUser(ctx, args[0])
				if err != nil {
					return err
				}
				return a.printUserChange(ch, "deleted")
			})
		},
	}
}

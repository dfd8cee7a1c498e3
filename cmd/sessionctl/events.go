package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/httpapi/client"
)

func (a *app) eventsCommand() *cobra.Command {
	return group("events", "Read the stream of applied events", a.eventsTail(), a.eventsFollow())
}

func (a *app) eventsTail() *cobra.Command {
	var after uint64
	cmd := &cobra.Command{
		Use:   "tail [--after N]",
		Short: "Print the events the node holds after an index, then exit",
		Long: `Print the events the node holds after index N (default: from the oldest it
holds), then exit. Tables print one line per event; -o json one JSON object per
line.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := a.context(cmd)
			defer cancel()
			return a.printEvents(c.Events(ctx, after, false))
		},
	}
	cmd.Flags().Uint64Var(&after, "after", 0, "start after this event index")
	return cmd
}

func (a *app) eventsFollow() *cobra.Command {
	var after uint64
	cmd := &cobra.Command{
		Use:   "follow [--after N]",
		Short: "Print events as they are applied, until interrupted",
		Long: `Print the events after index N (default: from the oldest the node holds), then
new events as they are applied, until interrupted (Ctrl-C ends cleanly). A
dropped connection is resumed where it broke off, on another node if needed.
--timeout does not apply.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Reconnects get more patience than one request: a follower that
			// restarts takes a while.
			c, err := a.client(client.WithRetry(8, 250*time.Millisecond))
			if err != nil {
				return err
			}
			err = a.printEvents(c.Events(cmd.Context(), after, true))
			if errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
				return nil // interrupted: the normal end
			}
			return err
		},
	}
	cmd.Flags().Uint64Var(&after, "after", 0, "start after this event index")
	return cmd
}

// printEvents prints each event as it arrives (no table buffering).
func (a *app) printEvents(events func(func(client.Event, error) bool)) error {
	var failed error
	events(func(ev client.Event, err error) bool {
		if err != nil {
			failed = err
			return false
		}
		if err := a.printEvent(ev); err != nil {
			failed = err
			return false
		}
		return true
	})
	return failed
}

func (a *app) printEvent(ev client.Event) error {
	if a.json() {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	var details []string
	add := func(k, v string) {
		if v != "" {
			details = append(details, k+"="+v)
		}
	}
	add("user", ev.UserID)
	add("session", ev.SessionID)
	add("app", ev.App)
	add("method", ev.AuthMethod)
	add("reason", ev.Reason)
	add("scope", ev.Scope)
	if ev.Count > 0 {
		add("count", fmt.Sprint(ev.Count))
	}
	add("error", ev.Error)
	if ev.Duplicate {
		details = append(details, "duplicate")
	}
	_, err := fmt.Fprintf(a.stdout, "%-8d %s  %-20s %s\n", ev.Index,
		ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), ev.Type, strings.Join(details, " "))
	return err
}

// Command sessionctl administers a sessiond cluster over its HTTP API:
// sessions, users, the policy, the cluster's members and the event stream.
//
//	sessionctl [--addr URL,...] [--api-key-file FILE] [-o table|json] COMMAND
//
// The admin key comes from --api-key-file (or SESSIOND_API_KEY_FILE; the
// last line that is not a comment is used, which is the newest key during a
// rotation) or from SESSIOND_API_KEY. Passwords are read from standard
// input, never from a flag. Session ids are base64url and may start with
// "-": put "--" before such an argument (sessionctl sessions get -- -AbC...).
// Tables are for people; -o json prints the API's
// JSON for scripts (one object per line for events). Errors are printed as
// "sessionctl: <code>: <message>"; the exit status is 1 for a failed
// request and 2 for a usage error.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

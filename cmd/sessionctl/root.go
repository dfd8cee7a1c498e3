package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/httpapi/client"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const defaultAddr = "http://127.0.0.1:8080"

// app is one invocation: its flags, streams and environment.
type app struct {
	env    func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	addr       string
	apiKeyFile string
	output     string
	timeout    time.Duration
	// minIndex is --min-index: one index or a comma-separated list, as
	// client.ParseIndexes reads it.
	minIndex string
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{env: env, stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code, text := describe(err)
	fmt.Fprintf(stderr, "sessionctl: %s: %s\n", code, text)
	var ue usageError
	if errors.As(err, &ue) || code == "usage" {
		return exitUsage
	}
	return exitError
}

// describe splits an error into the code and message printed for it.
func describe(err error) (code, message string) {
	if e, ok := client.AsError(err); ok {
		return e.Code, e.Message
	}
	var ue usageError
	switch msg := err.Error(); {
	case errors.As(err, &ue), strings.HasPrefix(msg, "unknown command"), strings.HasPrefix(msg, "unknown flag"),
		strings.HasPrefix(msg, "unknown shorthand flag"), strings.Contains(msg, "required flag"):
		return "usage", msg
	case errors.As(err, new(*net.OpError)):
		return "unreachable", msg
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout", msg
	case errors.Is(err, context.Canceled):
		return "interrupted", msg
	default:
		return "error", msg
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "sessionctl",
		Short: "Administer a sessiond cluster",
		Long: `sessionctl administers a sessiond cluster over its HTTP API.

The admin key is read from --api-key-file (or SESSIOND_API_KEY_FILE; the last
line that is not a comment is used) or from SESSIOND_API_KEY. Several node
addresses may be given: requests go to the first that answers.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			switch a.output {
			case "table", "json":
			default:
				return usagef("--output must be table or json, not %q", a.output)
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		if strings.HasPrefix(err.Error(), "unknown shorthand flag") {
			// Session ids are base64url and may start with "-".
			err = fmt.Errorf(`%w (put "--" before an argument that starts with "-", such as a session id: sessions get -- -AbC...)`, err)
		}
		return usageError{err}
	})
	addr := a.env("SESSIOND_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.addr, "addr", addr, "comma-separated node addresses (env SESSIOND_ADDR)")
	pf.StringVar(&a.apiKeyFile, "api-key-file", a.env("SESSIOND_API_KEY_FILE"), "file holding the admin key; the last non-comment line is used (env SESSIOND_API_KEY_FILE; else the key itself in SESSIOND_API_KEY)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second, "time limit of the command (not applied to events follow)")
	pf.StringVar(&a.minIndex, "min-index", "", "read only from a node that has applied this index (an index printed by an earlier write); with regions group:index, or a comma-separated list (eu:1234,us:99)")
	root.AddCommand(a.sessionsCommand(), a.usersCommand(), a.policyCommand(), a.clusterCommand(), a.eventsCommand())
	return root
}

// apiKey finds the admin key: the key file's last non-comment line, else
// SESSIOND_API_KEY.
func (a *app) apiKey() (string, error) {
	if a.apiKeyFile == "" {
		return strings.TrimSpace(a.env("SESSIOND_API_KEY")), nil
	}
	f, err := os.Open(a.apiKeyFile)
	if err != nil {
		return "", fmt.Errorf("API key file: %w", err)
	}
	defer f.Close()
	key := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			key = line
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("API key file: %w", err)
	}
	if key == "" {
		return "", fmt.Errorf("API key file %s holds no key", a.apiKeyFile)
	}
	return key, nil
}

// client builds the API client; extra options come last.
func (a *app) client(extra ...client.Option) (*client.Client, error) {
	key, err := a.apiKey()
	if err != nil {
		return nil, err
	}
	if a.minIndex != "" {
		if _, err := client.ParseIndexes(a.minIndex); err != nil {
			return nil, usagef("--min-index %q: give an index (1234), with regions group:index (eu:1234), or a comma-separated list with at most one per group", a.minIndex)
		}
	}
	opts := []client.Option{client.WithAPIKey(key), client.WithUserAgent("sessionctl"), client.WithMinIndexes(a.minIndex)}
	c, err := client.New(strings.Split(a.addr, ","), append(opts, extra...)...)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// context bounds a command by --timeout.
func (a *app) context(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if a.timeout > 0 {
		return context.WithTimeout(ctx, a.timeout)
	}
	return context.WithCancel(ctx)
}

// call runs f with a client and a bounded context.
func (a *app) call(cmd *cobra.Command, f func(ctx context.Context, c *client.Client) error) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	ctx, cancel := a.context(cmd)
	defer cancel()
	return f(ctx, c)
}

func (a *app) json() bool { return a.output == "json" }

// printJSON writes v as indented JSON.
func (a *app) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}

// table writes aligned columns; rows are tab-separated.
func (a *app) table(header string, rows []string) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	if header != "" {
		fmt.Fprintln(tw, header)
	}
	for _, r := range rows {
		fmt.Fprintln(tw, r)
	}
	return tw.Flush()
}

// fields writes "NAME  value" lines.
func (a *app) fields(pairs ...string) error {
	rows := make([]string, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		rows = append(rows, pairs[i]+"\t"+pairs[i+1])
	}
	return a.table("", rows)
}

// readSecret reads a password from standard input: its first line, without
// the line ending.
func (a *app) readSecret() (string, error) {
	rd := bufio.NewReader(io.LimitReader(a.stdin, 64<<10))
	line, err := rd.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usagef("--password-stdin: standard input holds no password")
	}
	return line, nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func formatBool(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// exactArgs is cobra.ExactArgs naming the arguments in its usage error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef("%s takes %d argument(s): %s", cmd.CommandPath(), len(names), strings.Join(names, " "))
		}
		for i, v := range args {
			if v == "" {
				return usagef("%s: %s must not be empty", cmd.CommandPath(), names[i])
			}
		}
		return nil
	}
}

// noArgs refuses positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments (got %q)", cmd.CommandPath(), args[0])
	}
	return nil
}

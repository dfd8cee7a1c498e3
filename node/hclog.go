package node

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter routes hashicorp libraries' logging into slog, so that one
// handler decides format and level for everything the node prints.
type hclogAdapter struct {
	logger  *slog.Logger
	name    string
	implied []any
}

func newHCLog(logger *slog.Logger, name string) hclog.Logger {
	return &hclogAdapter{logger: logger.With("subsystem", name), name: name}
}

func toSlogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	all := append(a.implied[:len(a.implied):len(a.implied)], args...)
	for i, v := range all {
		// hclog.Fmt values are printf-style pairs; render them here.
		if f, ok := v.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				all[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	a.logger.Log(context.Background(), toSlogLevel(level), msg, all...)
}
func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }
func (a *hclogAdapter) enabled(l slog.Level) bool {
	return a.logger.Enabled(context.Background(), l)
}
func (a *hclogAdapter) IsTrace() bool         { return false }
func (a *hclogAdapter) IsDebug() bool         { return a.enabled(slog.LevelDebug) }
func (a *hclogAdapter) IsInfo() bool          { return a.enabled(slog.LevelInfo) }
func (a *hclogAdapter) IsWarn() bool          { return a.enabled(slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool         { return a.enabled(slog.LevelError) }
func (a *hclogAdapter) ImpliedArgs() []any    { return a.implied }
func (a *hclogAdapter) Name() string          { return a.name }
func (a *hclogAdapter) SetLevel(hclog.Level)  {}
func (a *hclogAdapter) GetLevel() hclog.Level { return hclog.Info }
func (a *hclogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.implied = append(a.implied[:len(a.implied):len(a.implied)], args...)
	return &c
}
func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	c.name = a.name + "." + name
	c.logger = a.logger.With("component", name)
	return &c
}
func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}
func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}
func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		a.logger.Info(strings.TrimSpace(string(p)))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

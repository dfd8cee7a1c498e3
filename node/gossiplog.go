package node

import (
	"context"
	"io"
	"log/slog"
	"strings"
)

// memberlist logs through a standard-library *log.Logger, not hclog, so the
// hclog adapter that carries Raft's logs (hclog.go) does not fit it. Its
// lines carry their level as a prefix ("[ERR] memberlist: ..."); the writer
// here reads that prefix back into an slog level, so that gossip's
// debug chatter stays at debug under the node's handler.

// gossipLogWriter routes memberlist's standard-library logging into slog.
type gossipLogWriter struct{ log *slog.Logger }

func (w gossipLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.Contains(line, "[ERR]"):
		level = slog.LevelError
	case strings.Contains(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.Contains(line, "[INFO]"):
		level = slog.LevelInfo
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}

var _ io.Writer = gossipLogWriter{}

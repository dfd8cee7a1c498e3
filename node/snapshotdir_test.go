package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/transport/testkit"
)

// jsonRecords parses JSON log lines, one record a line.
func jsonRecords(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, rec)
	}
	return out
}

func snapshotNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, snapshotsDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestNode_StartRemovesUnfinishedSnapshotsAndKeepsComplete(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.TrailingLogs = 0 // the snapshot compacts the whole log: the session comes back only from it
	n := startNode(t, cfg)
	s, err := n.CreateSession(ctx(t), CreateRequest{UserID: "alice", App: "web", AuthMethod: events.AuthImpersonation})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	snapIndex := n.LastSnapshotIndex()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	complete := snapshotNames(t, dir)
	if len(complete) != 1 || strings.HasSuffix(complete[0], ".tmp") {
		t.Fatalf("snapshots after one snapshot: %v", complete)
	}

	// What a kill -9 during a snapshot leaves: the directory Raft writes
	// into, with its metadata and part of the state.
	leftover := filepath.Join(dir, snapshotsDir, "3-28086-1733550000000.tmp")
	if err := os.Mkdir(leftover, 0o755); err != nil {
		t.Fatal(err)
	}
	meta, err := os.ReadFile(filepath.Join(dir, snapshotsDir, complete[0], "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(leftover, "meta.json"), meta, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(leftover, "state.bin"), make([]byte, 100_000), 0o644); err != nil {
		t.Fatal(err)
	}
	wantBytes := float64(len(meta) + 100_000)
	// Not Raft's: left alone.
	other := filepath.Join(dir, snapshotsDir, "backup.tmp")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}

	var logs testkit.SyncBuffer
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n = startNode(t, cfg)
	defer n.Close()

	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("the unfinished snapshot is still there (stat: %v)", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a directory that is not Raft's was touched: %v", err)
	}
	if names := snapshotNames(t, dir); len(names) != 2 || !slices.Contains(names, complete[0]) {
		t.Errorf("snapshots after restart %v, want %s kept (and backup.tmp)", names, complete[0])
	}
	if got := n.LastSnapshotIndex(); got != snapIndex {
		t.Errorf("last snapshot index after restart %d, want %d", got, snapIndex)
	}
	if _, err := n.Validate(ctx(t), s.AccessToken); err != nil {
		t.Errorf("the session in the snapshot does not validate after restart: %v", err)
	}

	removed := 0
	for _, rec := range jsonRecords(t, logs.String()) {
		msg, _ := rec["msg"].(string)
		switch {
		case strings.Contains(msg, "removed an unfinished snapshot"):
			removed++
			if rec["level"] != "INFO" || rec["name"] != filepath.Base(leftover) || rec["bytes"] != wantBytes {
				t.Errorf("removal logged as %v, want INFO with name %s and bytes %v", rec, filepath.Base(leftover), wantBytes)
			}
		default:
			if line, _ := json.Marshal(rec); bytes.Contains(line, []byte("3-28086")) {
				t.Errorf("the unfinished snapshot was seen after its removal: %s", line)
			}
		}
	}
	if removed != 1 {
		t.Errorf("%d removals logged, want 1", removed)
	}
}

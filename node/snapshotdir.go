package node

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
)

// hashicorp/raft's FileSnapshotStore writes a snapshot into
// <data dir>/snapshots/<term>-<index>-<unix ms>.tmp and renames the
// directory without the suffix once the snapshot is complete. A process
// killed while writing leaves the .tmp directory behind: Raft skips it
// (with a warning on every listing) and never removes it.

// snapshotsDir is the directory the FileSnapshotStore keeps under its base
// (raft's snapPath).
const snapshotsDir = "snapshots"

// leftoverSnapshot matches the name of a snapshot Raft began and never
// finished (raft's snapshotName plus tmpSuffix). A complete snapshot has no
// suffix and never matches.
var leftoverSnapshot = regexp.MustCompile(`^[0-9]+-[0-9]+-[0-9]+\.tmp$`)

// removeLeftoverSnapshots removes the unfinished snapshots under
// dataDir/snapshots, logging each with its size. It runs before Raft opens
// the snapshot store and while this process holds the data dir's bolt
// lock, so no snapshot is being written. A directory that cannot be
// removed is only warned about: Raft ignores it anyway.
func removeLeftoverSnapshots(dataDir string, log *slog.Logger) {
	dir := filepath.Join(dataDir, snapshotsDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("cannot list the snapshot directory", "dir", dir, "error", err)
		}
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !leftoverSnapshot.MatchString(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		size := dirSize(path)
		if err := os.RemoveAll(path); err != nil {
			log.Warn("cannot remove an unfinished snapshot", "name", e.Name(), "bytes", size, "error", err)
			continue
		}
		log.Info("removed an unfinished snapshot left by an earlier process", "name", e.Name(), "bytes", size)
	}
}

// dirSize is the total size of the regular files under dir, as far as it
// can be read.
func dirSize(dir string) int64 {
	var size int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // best effort: the size is only logged
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				size += info.Size()
			}
		}
		return nil
	})
	return size
}

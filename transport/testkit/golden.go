package testkit

import (
	"os"
	"path/filepath"
	"testing"
)

// Golden returns the contents of the golden file at path. When update is
// set (a test's -update flag) it first writes got there, creating the
// directory. A missing file fails the test, naming the flag.
func Golden(t testing.TB, path string, got []byte, update bool) []byte {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(got))
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (create it with -update): %v", err)
	}
	return want
}

package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzReadKeyFile checks the admin API key-file loader on any content: no
// panic; it loads exactly the trimmed lines that are not blank or
// comments, in order, and refuses a file without any; and the keys it
// loaded, written one per line, load again as the same keys.
func FuzzReadKeyFile(f *testing.F) {
	f.Add("# admin keys\nsk_first-key\r\n\n  sk_second key\t\n")
	f.Add("compose-demo-admin-key-not-secret-0001")
	f.Add("# nothing\n \n")
	f.Add("")
	path := filepath.Join(f.TempDir(), "admin.keys")
	read := func(t *testing.T, content string) ([]string, error) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return readKeyFile(path)
	}
	f.Fuzz(func(t *testing.T, content string) {
		var want []string
		for _, line := range strings.Split(content, "\n") {
			if key := strings.TrimSpace(line); key != "" && !strings.HasPrefix(key, "#") {
				want = append(want, key)
			}
		}
		keys, err := read(t, content)
		if len(want) == 0 {
			if err == nil {
				t.Fatalf("loaded %q from a file without keys", keys)
			}
			return
		}
		if err != nil || !slices.Equal(keys, want) {
			t.Fatalf("loaded %q (%v), want %q", keys, err, want)
		}
		again, err := read(t, strings.Join(keys, "\n")+"\n")
		if err != nil || !slices.Equal(again, keys) {
			t.Fatalf("the keys written again load as %q (%v)", again, err)
		}
	})
}

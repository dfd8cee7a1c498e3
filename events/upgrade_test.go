package events

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Raft logs outlive the build that wrote them: a node restarted on its data
// directory, or a follower catching up, applies entries an older version
// wrote. envelopes-v1.golden is the wire-format golden file exactly as the
// first release recorded it (commit 3aad384, snapshot format 1, event types
// 1 to 6, before the fields added since); envelopes.golden and batch.golden
// are the current ones. None of them is ever rewritten for an old release.

// goldenLines reads a golden file of "TypeName hex" lines (or bare hex).
func goldenLines(t *testing.T, name string) (names []string, entries [][]byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		name, hexData, ok := strings.Cut(line, " ")
		if !ok {
			name, hexData = "", line
		}
		entry, err := hex.DecodeString(hexData)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		names, entries = append(names, name), append(entries, entry)
	}
	return names, entries
}

// TestWireFormat_FirstReleaseEntriesDecodeToTheSameEvents decodes the entries
// the first release wrote. Its six samples are still the first six of
// sampleEnvelopes, so each must decode to exactly that envelope (the fields
// added since read as their zero values) and encode again to today's golden
// line.
func TestWireFormat_FirstReleaseEntriesDecodeToTheSameEvents(t *testing.T) {
	names, old := goldenLines(t, "envelopes-v1.golden")
	_, current := goldenLines(t, "envelopes.golden")
	samples := sampleEnvelopes()
	if len(old) != 6 {
		t.Fatalf("envelopes-v1.golden holds %d entries, want the first release's 6", len(old))
	}
	for i, entry := range old {
		env, err := Decode(entry)
		if err != nil {
			t.Errorf("%s written by the first release no longer decodes: %v", names[i], err)
			continue
		}
		want := samples[i]
		want.Version = 1 // every event type was at version 1 then
		if env.Type().String() != names[i] || !reflect.DeepEqual(env, want) {
			t.Errorf("%s written by the first release decodes to %+v %+v, want %+v %+v", names[i], env, env.Event, want, want.Event)
		}
		again, err := Encode(env)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, current[i]) {
			t.Errorf("%s: re-encoded %x, today's golden %x", names[i], again, current[i])
		}
	}
}

// TestWireFormat_EveryTypeHasAGoldenEntry keeps the golden files complete: an
// event type without a golden entry could change its wire form unnoticed.
func TestWireFormat_EveryTypeHasAGoldenEntry(t *testing.T) {
	seen := map[Type]bool{}
	for _, file := range []string{"envelopes.golden", "envelopes-directory.golden"} {
		_, entries := goldenLines(t, file)
		for _, entry := range entries {
			env, err := Decode(entry)
			if err != nil {
				t.Fatal(err)
			}
			seen[env.Type()] = true
		}
	}
	for typ := TypeSessionCreated; typ < 255; typ++ {
		if typ != TypeBatch && typ.String() != "Unknown" && !seen[typ] {
			t.Errorf("no golden entry of %s (type %d)", typ, typ)
		}
	}
	_, batches := goldenLines(t, "batch.golden")
	for _, entry := range batches {
		envs, err := DecodeBatch(entry)
		if err != nil || len(envs) == 0 {
			t.Errorf("golden batch entry: %d envelopes, %v", len(envs), err)
		}
	}
}

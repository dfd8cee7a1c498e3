package events

import (
	"bytes"
	"encoding/hex"
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/transport/testkit"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestWireFormat_Golden pins the bytes of every event type. A failure means
// the wire format changed: entries already in Raft logs would decode
// differently. Bump the event's version instead, or, for a deliberate
// change before any release, run `go test ./events -run Golden -update`.
func TestWireFormat_Golden(t *testing.T) {
	var out strings.Builder
	for _, env := range sampleEnvelopes() {
		data, err := Encode(env)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(env.Type().String() + " " + hex.EncodeToString(data) + "\n")
	}
	want := testkit.Golden(t, filepath.Join("testdata", "envelopes.golden"), []byte(out.String()), *update)
	if !bytes.Equal(want, []byte(out.String())) {
		t.Fatalf("wire format changed:\n got:\n%s\nwant:\n%s", out.String(), want)
	}
	// And every golden entry still decodes.
	for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
		_, hexData, _ := strings.Cut(line, " ")
		data, err := hex.DecodeString(hexData)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(data); err != nil {
			t.Errorf("golden entry %q no longer decodes: %v", line[:20], err)
		}
	}
}

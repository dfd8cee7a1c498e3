package events

import (
	"bytes"
	"encoding/hex"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/transport/testkit"
)

// directorySampleEnvelopes are the directory events' samples. They are kept
// apart from sampleEnvelopes, whose golden file (envelopes.golden) predates
// them and is not rewritten for them: envelopes-directory.golden pins theirs.
func directorySampleEnvelopes() []Envelope {
	return []Envelope{
		{Time: 17, RequestID: "r17", Event: &UserHomed{UserID: "alice", Region: "eu-west-1"}},
		{Time: 18, RequestID: "r18", Event: &EmailClaimed{UserID: "alice", Email: "alice@example.com"}},
		{Time: 19, RequestID: "r19", Event: &EmailClaimed{UserID: "alice"}},
		{Time: 20, RequestID: "r20", Event: &DirectoryImported{Region: "eu", Users: []ImportedUser{
			{UserID: "ada", Email: "ada@example.com"}, {UserID: "linus"}}, Policy: &Policy{AccessTTL: 1200e9, MaxSessionsPerUser: 50}}},
		{Time: 21, RequestID: "r21", Event: &DirectoryImported{Region: "eu", Users: []ImportedUser{{UserID: "zoe"}}, Done: true}},
		{Time: 22, RequestID: "r22", Event: &UserFrozen{UserID: "ada", To: "us", Move: "m1"}},
		{Time: 23, RequestID: "r23", Event: &UserImported{UserID: "ada", From: "eu", Move: "m1", State: []byte{0x93, 0, 0, 0}}},
		{Time: 24, RequestID: "r24", Event: &HomeMoved{UserID: "ada", From: "eu", To: "us"}},
	}
}

// allSampleEnvelopes are the samples of every event type.
func allSampleEnvelopes() []Envelope {
	return append(sampleEnvelopes(), directorySampleEnvelopes()...)
}

// TestWireFormat_DirectoryGolden pins the bytes of the directory events, as
// TestWireFormat_Golden does for the others (and with its -update flag).
func TestWireFormat_DirectoryGolden(t *testing.T) {
	var out strings.Builder
	for _, env := range directorySampleEnvelopes() {
		data, err := Encode(env)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(env.Type().String() + " " + hex.EncodeToString(data) + "\n")
	}
	want := testkit.Golden(t, filepath.Join("testdata", "envelopes-directory.golden"), []byte(out.String()), *update)
	if !bytes.Equal(want, []byte(out.String())) {
		t.Fatalf("wire format changed:\n got:\n%s\nwant:\n%s", out.String(), want)
	}
	names, entries := goldenLines(t, "envelopes-directory.golden")
	samples := directorySampleEnvelopes()
	for i, entry := range entries {
		env, err := Decode(entry)
		if err != nil {
			t.Fatalf("golden %s no longer decodes: %v", names[i], err)
		}
		want := samples[i]
		want.Version = CurrentVersion
		if env.Type().String() != names[i] || !reflect.DeepEqual(env, want) {
			t.Errorf("golden %s decodes to %+v %+v, want %+v %+v", names[i], env, env.Event, want, want.Event)
		}
	}
}

// The type byte 14 marks a batch entry: no event type may take it, or the
// state machine would read that event as a batch.
func TestTypes_NoEventTypeIsTheBatchMarker(t *testing.T) {
	names := map[string]Type{}
	for typ := Type(0); typ < 255; typ++ {
		name := typ.String()
		if name == "Unknown" || typ == TypeBatch {
			continue
		}
		if prev, dup := names[name]; dup {
			t.Errorf("types %d and %d are both named %s", prev, typ, name)
		}
		names[name] = typ
	}
	if names["UserHomed"] != TypeUserHomed || names["EmailClaimed"] != TypeEmailClaimed {
		t.Errorf("directory types named %v", names)
	}
	for _, env := range allSampleEnvelopes() {
		if env.Type() == TypeBatch {
			t.Fatalf("%T has the batch marker as its type", env.Event)
		}
		data, err := Encode(env)
		if err != nil {
			t.Fatal(err)
		}
		if IsBatch(data) {
			t.Errorf("an encoded %s reads as a batch entry", env.Type())
		}
	}
}

func TestBatch_CarriesDirectoryEvents(t *testing.T) {
	samples := directorySampleEnvelopes()
	var entries [][]byte
	for _, env := range samples {
		data, err := Encode(env)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, data)
	}
	batch, err := EncodeBatch(entries)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range samples {
		samples[i].Version = CurrentVersion
	}
	if !reflect.DeepEqual(got, samples) {
		t.Errorf("batch of directory events decodes to %+v", got)
	}
}

func TestValidRegion(t *testing.T) {
	for name, want := range map[string]bool{
		"default":                 true,
		"eu-west-1":               true,
		"ap.south.2":              true,
		"0":                       true,
		strings.Repeat("a", 64):   true,
		"":                        false,
		strings.Repeat("a", 65):   false,
		"EU-west":                 false,
		"eu_west":                 false,
		"eu west":                 false,
		"eu/west":                 false,
		"région":                  false,
		"eu-west\x00":             false,
		strings.Repeat("ab", 100): false,
	} {
		if got := ValidRegion(name); got != want {
			t.Errorf("ValidRegion(%q) = %v, want %v", name, got, want)
		}
	}
}

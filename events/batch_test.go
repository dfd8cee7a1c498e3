package events

import (
	"bytes"
	"encoding/hex"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/transport/testkit"
)

func encodeAll(t *testing.T, envs []Envelope) [][]byte {
	t.Helper()
	out := make([][]byte, len(envs))
	for i, env := range envs {
		data, err := Encode(env)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = data
	}
	return out
}

func TestBatch_RoundTripKeepsEveryEventInOrder(t *testing.T) {
	envs := sampleEnvelopes()
	// Enough entries for a 16-bit array length, and one entry over 255
	// bytes for a 16-bit bin length.
	for len(envs) < 40 {
		envs = append(envs, sampleEnvelopes()...)
	}
	big := Envelope{Time: 9, RequestID: strings.Repeat("r", 300), Event: &SessionsExpired{Until: 9}}
	envs = append(envs, big)
	entry, err := EncodeBatch(encodeAll(t, envs))
	if err != nil {
		t.Fatal(err)
	}
	if !IsBatch(entry) {
		t.Fatal("IsBatch is false for a batch")
	}
	got, err := DecodeBatch(entry)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]Envelope, len(envs))
	for i, env := range envs {
		env.Version = CurrentVersion
		want[i] = env
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded batch differs:\n got %+v\nwant %+v", got, want)
	}
	if one, _ := Encode(envs[0]); IsBatch(one) {
		t.Error("IsBatch is true for a single envelope")
	}
}

func TestBatch_RefusesWhatItCannotApplyWhole(t *testing.T) {
	good := encodeAll(t, sampleEnvelopes()[:3])
	entry, err := EncodeBatch(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EncodeBatch(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty batch: %v", err)
	}
	if _, err := EncodeBatch([][]byte{good[0], entry}); !errors.Is(err, ErrMalformed) {
		t.Errorf("batch inside a batch: %v", err)
	}
	if _, err := Decode(entry); !errors.Is(err, ErrUnknownType) {
		t.Errorf("Decode of a batch: %v, want ErrUnknownType", err)
	}

	nested := append([]byte{byte(TypeBatch), batchVersion, 0x92}, appendBinLen(nil, len(good[0]))...)
	nested = append(nested, good[0]...)
	nested = appendBinLen(nested, len(entry))
	nested = append(nested, entry...)

	// The first envelope (after the array and bin headers) gets a type no
	// build knows.
	badInner := bytes.Clone(entry)
	if badInner[3] != 0xc4 || badInner[5] != good[0][0] {
		t.Fatalf("layout changed: % x", badInner[:8])
	}
	badInner[5] = 0xee

	cases := map[string]struct {
		entry []byte
		want  error
	}{
		"unknown version":   {append([]byte{byte(TypeBatch), 2}, entry[2:]...), ErrUnsupportedVersion},
		"truncated":         {entry[:len(entry)-5], ErrMalformed},
		"trailing bytes":    {append(bytes.Clone(entry), 0xc0), ErrMalformed},
		"no body":           {entry[:2], ErrMalformed},
		"not an array":      {[]byte{byte(TypeBatch), batchVersion, 0xc0}, ErrMalformed},
		"empty array":       {[]byte{byte(TypeBatch), batchVersion, 0x90}, ErrMalformed},
		"count beyond data": {[]byte{byte(TypeBatch), batchVersion, 0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc4, 0x00}, ErrMalformed},
		"not a bin":         {[]byte{byte(TypeBatch), batchVersion, 0x91, 0xa1, 'x'}, ErrMalformed},
		"bin beyond data":   {[]byte{byte(TypeBatch), batchVersion, 0x91, 0xc5, 0xff, 0xff, 0x01}, ErrMalformed},
		"batch inside":      {nested, ErrMalformed},
		"bad envelope":      {badInner, ErrUnknownType},
	}
	for name, c := range cases {
		if _, err := DecodeBatch(c.entry); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// TestBatch_Golden pins the batch wire form, as TestWireFormat_Golden does
// for the events.
func TestBatch_Golden(t *testing.T) {
	entry, err := EncodeBatch(encodeAll(t, sampleEnvelopes()[:2]))
	if err != nil {
		t.Fatal(err)
	}
	got := hex.EncodeToString(entry) + "\n"
	want := testkit.Golden(t, filepath.Join("testdata", "batch.golden"), []byte(got), *update)
	if got != string(want) {
		t.Fatalf("batch wire form changed:\n got %s\nwant %s", got, want)
	}
}

// FuzzDecodeBatch checks that no entry crashes DecodeBatch, that what it
// refuses it refuses with one of the package's sentinels, and that what it
// accepts encodes again to a batch that decodes to the same envelopes.
func FuzzDecodeBatch(f *testing.F) {
	envs := sampleEnvelopes()
	for _, n := range []int{1, 2} {
		data := make([][]byte, n)
		for i := range data {
			data[i], _ = Encode(envs[i])
		}
		entry, _ := EncodeBatch(data)
		f.Add(entry)
	}
	f.Add([]byte{byte(TypeBatch), batchVersion, 0x90})
	f.Add([]byte{byte(TypeBatch), batchVersion, 0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc4, 0x00})
	f.Add([]byte{byte(TypeBatch), batchVersion, 0x91, 0xc5, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, entry []byte) {
		got, err := DecodeBatch(entry)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrUnknownType) {
				t.Fatalf("refusal %v wraps none of the sentinels", err)
			}
			return
		}
		if !IsBatch(entry) || len(got) == 0 {
			t.Fatalf("accepted %x as a batch of %d", entry, len(got))
		}
		data := make([][]byte, len(got))
		for i, env := range got {
			if data[i], err = Encode(env); err != nil {
				t.Fatalf("entry %d decoded but does not encode: %v", i, err)
			}
		}
		again, err := EncodeBatch(data)
		if err != nil {
			t.Fatalf("the decoded envelopes do not batch: %v", err)
		}
		back, err := DecodeBatch(again)
		if err != nil {
			t.Fatalf("the re-encoded batch does not decode: %v", err)
		}
		if !reflect.DeepEqual(got, back) {
			t.Fatalf("decode(encode(decode(x))) differs:\n%+v\n%+v", got, back)
		}
	})
}

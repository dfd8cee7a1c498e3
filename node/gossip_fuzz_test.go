package node

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzDecodeMemberMeta checks the decoder of a member's gossip metadata on
// any bytes: no panic, a refusal wraps errBadMeta, and accepted metadata
// encodes again (as startGossip encodes it) to the same record.
func FuzzDecodeMemberMeta(f *testing.F) {
	add := func(v any) {
		data, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	add(memberMeta{ID: "n1", RaftAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:8080", Region: "eu", Voter: true, Expect: 3, Batches: true})
	// An older version's: no "b".
	add(struct {
		ID       string `msgpack:"i"`
		RaftAddr string `msgpack:"r"`
		HTTPAddr string `msgpack:"h"`
		Region   string `msgpack:"g"`
		Voter    bool   `msgpack:"v"`
		Expect   int    `msgpack:"e"`
	}{"n2", "n2:7000", "n2:8080", "", false, 0})
	add(memberMeta{RaftAddr: "no-id:7000"})
	add(struct {
		ID      string `msgpack:"i"`
		Unknown []int  `msgpack:"z"`
	}{"n3", []int{1, 2}})
	f.Add([]byte{0x81, 0xa1, 'i', 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}) // a 4 GB id claim
	f.Add([]byte{0x81, 0xa1, 'i', 0xa1, 'x', 0xc0})                   // trailing bytes
	f.Fuzz(func(t *testing.T, data []byte) {
		meta, err := decodeMemberMeta(data)
		if err != nil {
			if !errors.Is(err, errBadMeta) {
				t.Fatalf("refusal %v does not wrap errBadMeta", err)
			}
			return
		}
		if meta.ID == "" {
			t.Fatal("accepted metadata without a member id")
		}
		again, err := msgpack.Marshal(meta)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeMemberMeta(again)
		if err != nil || !sameMeta(back, meta) {
			t.Fatalf("%+v encoded again reads as %+v (%v)", meta, back, err)
		}
	})
}

// sameMeta compares two members' metadata; an empty list of regions equals
// none (omitempty leaves it out).
func sameMeta(a, b memberMeta) bool {
	if !slices.Equal(a.Regions, b.Regions) {
		return false
	}
	a.Regions, b.Regions = nil, nil
	return reflect.DeepEqual(a, b)
}

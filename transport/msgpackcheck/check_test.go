package msgpackcheck

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestCheck_AcceptsWhatMsgpackWrites(t *testing.T) {
	values := []any{
		nil, true, false, 0, -1, 127, -33, 300, -300, 1 << 40, 3.5, float32(1.5),
		"", "short", string(make([]byte, 300)), string(make([]byte, 70000)),
		[]byte{1, 2, 3}, make([]byte, 70000),
		[]any{1, "a", []any{nil, map[string]any{"k": []int{1, 2}}}},
		map[string]int{"a": 1, "b": 2},
		make([]int, 20), make([]int, 70000),
		struct {
			A string
			B []string
			C [32]byte
		}{A: "x", B: []string{"y"}},
	}
	for _, v := range values {
		data, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(data); err != nil {
			t.Errorf("%T: %v", v, err)
		}
		if err := CheckSequence(append(data, data...)); err != nil {
			t.Errorf("%T twice: %v", v, err)
		}
	}
}

func TestCheck_RefusesClaimsLargerThanTheInput(t *testing.T) {
	cases := map[string][]byte{
		"empty":               {},
		"array32 of 2^32-1":   {0xdd, 0xff, 0xff, 0xff, 0xff},
		"array16 too long":    {0xdc, 0x00, 0x10, 0x01},
		"map32 huge":          {0xdf, 0x7f, 0xff, 0xff, 0xff, 0x01, 0x01},
		"str32 huge":          {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'},
		"bin16 past the end":  {0xc5, 0x00, 0x05, 1, 2},
		"truncated int":       {0xcf, 0, 0},
		"fixarray short":      {0x93, 0x01, 0x02},
		"unknown type 0xc1":   {0xc1},
		"trailing":            {0x01, 0x02},
		"ext32 past the end":  {0xc9, 0x00, 0x00, 0x00, 0x10, 0x01},
		"truncated length":    {0xda, 0x00},
		"fixstr past the end": {0xa5, 'a'},
	}
	for name, data := range cases {
		if err := Check(data); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	deep := make([]byte, 0, 100)
	for range MaxDepth + 2 {
		deep = append(deep, 0x91)
	}
	deep = append(deep, 0x01)
	if err := Check(deep); !errors.Is(err, ErrInvalid) {
		t.Errorf("deep nesting: got %v", err)
	}
}

func FuzzCheck(f *testing.F) {
	f.Add([]byte{0x93, 0x01, 0xa1, 'x', 0xc0})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if Check(data) != nil {
			return
		}
		// Whatever passes is one complete value to the decoder too.
		dec := msgpack.NewDecoder(bytes.NewReader(data))
		if err := dec.Skip(); err != nil {
			t.Fatalf("checked data does not decode: %v", err)
		}
	})
}

package events

import (
	"encoding/binary"
	"fmt"
)

// A batch is one log entry holding several encoded envelopes, which the
// state machine applies in order at the entry's index. The leader packs the
// writes it proposes together into one batch, so that Raft, its log store
// and its transport handle one entry where they would handle dozens: each
// of them costs per entry, not per byte (an encoded map, a B+tree key, a
// reflected struct on every node).
//
// Wire form: the type byte TypeBatch, the version byte 1, then a msgpack
// array of bin values, each an envelope as Encode writes it. A batch never
// holds a batch.

// TypeBatch marks a batch entry. It is not an event type: Decode refuses
// it, DecodeBatch reads it.
const TypeBatch Type = 14

// batchVersion is the only version of the batch wire form.
const batchVersion uint8 = 1

// IsBatch reports whether a log entry is a batch (and not one envelope).
func IsBatch(entry []byte) bool {
	return len(entry) >= headerLen && Type(entry[0]) == TypeBatch
}

// EncodeBatch packs envelopes encoded by Encode into one log entry.
func EncodeBatch(entries [][]byte) ([]byte, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: an empty batch", ErrMalformed)
	}
	size := headerLen + 5
	for _, e := range entries {
		if IsBatch(e) {
			return nil, fmt.Errorf("%w: a batch inside a batch", ErrMalformed)
		}
		size += 5 + len(e)
	}
	out := make([]byte, 0, size)
	out = append(out, byte(TypeBatch), batchVersion)
	out = appendArrayLen(out, len(entries))
	for _, e := range entries {
		out = appendBinLen(out, len(e))
		out = append(out, e...)
	}
	return out, nil
}

// DecodeBatch reads a batch entry written by EncodeBatch and decodes each
// envelope in it, with Decode's strictness: one bad envelope fails the
// whole batch.
func DecodeBatch(entry []byte) ([]Envelope, error) {
	if !IsBatch(entry) {
		return nil, fmt.Errorf("%w: not a batch", ErrMalformed)
	}
	if v := entry[1]; v != batchVersion {
		return nil, fmt.Errorf("%w: %s version %d", ErrUnsupportedVersion, TypeBatch, v)
	}
	body := entry[headerLen:]
	n, body, err := readArrayLen(body)
	if err != nil {
		return nil, err
	}
	if n <= 0 { // negative: a 32-bit count past int's range
		return nil, fmt.Errorf("%w: an empty batch", ErrMalformed)
	}
	// Every element takes at least a bin header and an envelope header, so
	// a claimed count the bytes cannot hold is refused before allocating.
	if n > len(body)/(2+headerLen) {
		return nil, fmt.Errorf("%w: batch claims %d entries in %d bytes", ErrMalformed, n, len(body))
	}
	out := make([]Envelope, n)
	for i := range out {
		var data []byte
		if data, body, err = readBin(body); err != nil {
			return nil, fmt.Errorf("%w (entry %d of %d)", err, i, n)
		}
		if IsBatch(data) {
			return nil, fmt.Errorf("%w: a batch inside a batch", ErrMalformed)
		}
		if out[i], err = Decode(data); err != nil {
			return nil, fmt.Errorf("batch entry %d of %d: %w", i, n, err)
		}
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%w: batch has %d trailing bytes", ErrMalformed, len(body))
	}
	return out, nil
}

// The batch's framing is two msgpack headers, written and read here by hand:
// they are fixed, and the envelopes inside need no copy this way.

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
	}
}

func appendBinLen(b []byte, n int) []byte {
	switch {
	case n <= 0xff:
		return append(b, 0xc4, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
}

func readArrayLen(b []byte) (int, []byte, error) {
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("%w: batch has no body", ErrMalformed)
	}
	switch c := b[0]; {
	case c&0xf0 == 0x90:
		return int(c & 0x0f), b[1:], nil
	case c == 0xdc && len(b) >= 3:
		return int(binary.BigEndian.Uint16(b[1:])), b[3:], nil
	case c == 0xdd && len(b) >= 5:
		return int(binary.BigEndian.Uint32(b[1:])), b[5:], nil
	}
	return 0, nil, fmt.Errorf("%w: batch body is not an array", ErrMalformed)
}

func readBin(b []byte) (data, rest []byte, err error) {
	var n, head int
	switch {
	case len(b) >= 2 && b[0] == 0xc4:
		n, head = int(b[1]), 2
	case len(b) >= 3 && b[0] == 0xc5:
		n, head = int(binary.BigEndian.Uint16(b[1:])), 3
	case len(b) >= 5 && b[0] == 0xc6:
		n, head = int(binary.BigEndian.Uint32(b[1:])), 5
	default:
		return nil, nil, fmt.Errorf("%w: batch element is not a bin value", ErrMalformed)
	}
	if n > len(b)-head {
		return nil, nil, fmt.Errorf("%w: batch element claims %d bytes, %d left", ErrMalformed, n, len(b)-head)
	}
	return b[head : head+n], b[head+n:], nil
}

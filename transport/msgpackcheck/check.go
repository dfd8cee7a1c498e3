// Package msgpackcheck validates the structure of msgpack data before it is
// decoded. The msgpack decoder allocates what a length prefix claims (a
// 5-byte array header can claim four billion elements), so bytes from a log
// entry, a peer or a snapshot are checked first: every string, binary and
// extension fits in the input, every container claims no more elements
// than bytes remain (each element takes at least one), and nesting is
// bounded. Valid data then decodes with allocations bounded by its size.
package msgpackcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxDepth bounds container nesting.
const MaxDepth = 32

// ErrInvalid reports data that is not well-formed msgpack or claims more
// than it holds.
var ErrInvalid = errors.New("msgpackcheck: invalid msgpack")

// Check validates that data holds exactly one well-formed msgpack value.
func Check(data []byte) error {
	n, err := value(data, 0, 0)
	if err != nil {
		return err
	}
	if n != len(data) {
		return fmt.Errorf("%w: %d trailing bytes", ErrInvalid, len(data)-n)
	}
	return nil
}

// CheckSequence validates that data holds one or more values back to back.
func CheckSequence(data []byte) error {
	for pos := 0; pos < len(data); {
		n, err := value(data, pos, 0)
		if err != nil {
			return err
		}
		pos = n
	}
	return nil
}

func fail(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// value checks the value starting at pos and returns the position after it.
func value(b []byte, pos, depth int) (int, error) {
	if depth > MaxDepth {
		return 0, fail("nested deeper than %d", MaxDepth)
	}
	if pos >= len(b) {
		return 0, fail("truncated at byte %d", pos)
	}
	c := b[pos]
	pos++
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		return pos, nil
	case c >= 0x80 && c <= 0x8f:
		return container(b, pos, int(c&0x0f)*2, depth)
	case c >= 0x90 && c <= 0x9f:
		return container(b, pos, int(c&0x0f), depth)
	case c >= 0xa0 && c <= 0xbf:
		return skip(b, pos, int(c&0x1f))
	}
	switch c {
	case 0xcc, 0xd0:
		return skip(b, pos, 1)
	case 0xcd, 0xd1:
		return skip(b, pos, 2)
	case 0xca, 0xce, 0xd2:
		return skip(b, pos, 4)
	case 0xcb, 0xcf, 0xd3:
		return skip(b, pos, 8)
	case 0xd4:
		return skip(b, pos, 2)
	case 0xd5:
		return skip(b, pos, 3)
	case 0xd6:
		return skip(b, pos, 5)
	case 0xd7:
		return skip(b, pos, 9)
	case 0xd8:
		return skip(b, pos, 17)
	case 0xc4, 0xd9: // bin8, str8
		n, pos, err := length(b, pos, 1)
		if err != nil {
			return 0, err
		}
		return skip(b, pos, n)
	case 0xc5, 0xda:
		n, pos, err := length(b, pos, 2)
		if err != nil {
			return 0, err
		}
		return skip(b, pos, n)
	case 0xc6, 0xdb:
		n, pos, err := length(b, pos, 4)
		if err != nil {
			return 0, err
		}
		return skip(b, pos, n)
	case 0xc7, 0xc8, 0xc9: // ext8/16/32: length, type byte, data
		size := map[byte]int{0xc7: 1, 0xc8: 2, 0xc9: 4}[c]
		n, pos, err := length(b, pos, size)
		if err != nil {
			return 0, err
		}
		return skip(b, pos, n+1)
	case 0xdc, 0xdd: // array16/32
		size := 2
		if c == 0xdd {
			size = 4
		}
		n, pos, err := length(b, pos, size)
		if err != nil {
			return 0, err
		}
		return container(b, pos, n, depth)
	case 0xde, 0xdf: // map16/32
		size := 2
		if c == 0xdf {
			size = 4
		}
		n, pos, err := length(b, pos, size)
		if err != nil {
			return 0, err
		}
		return container(b, pos, 2*n, depth)
	}
	return 0, fail("unknown type byte 0x%02x", c)
}

func length(b []byte, pos, size int) (int, int, error) {
	if pos+size > len(b) {
		return 0, 0, fail("truncated length at byte %d", pos)
	}
	var n uint64
	switch size {
	case 1:
		n = uint64(b[pos])
	case 2:
		n = uint64(binary.BigEndian.Uint16(b[pos:]))
	case 4:
		n = uint64(binary.BigEndian.Uint32(b[pos:]))
	}
	if n > uint64(len(b)) {
		return 0, 0, fail("length %d exceeds the %d bytes given", n, len(b))
	}
	return int(n), pos + size, nil
}

func skip(b []byte, pos, n int) (int, error) {
	if n < 0 || pos+n > len(b) {
		return 0, fail("value of %d bytes at %d runs past the end", n, pos)
	}
	return pos + n, nil
}

// container checks n elements; each takes at least one byte, so a claim
// larger than what remains is refused before anything is walked.
func container(b []byte, pos, n, depth int) (int, error) {
	if n > len(b)-pos {
		return 0, fail("container claims %d elements with %d bytes left", n, len(b)-pos)
	}
	for range n {
		var err error
		if pos, err = value(b, pos, depth+1); err != nil {
			return 0, err
		}
	}
	return pos, nil
}

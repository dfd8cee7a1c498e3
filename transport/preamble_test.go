package transport

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// The preamble is a wire format: a peer of another version must still read
// it. Kind byte, one length byte, then the advertised address.
func TestDial_WritesPreambleOnTheWire(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli := listen(t, Config{AdvertiseAddr: "node-1.test:7000"})

	for _, tt := range []struct {
		kind Kind
		want []byte
	}{
		{KindRaft, append([]byte{'R', 16}, "node-1.test:7000"...)},
		{KindRPC, append([]byte{'C', 16}, "node-1.test:7000"...)},
	} {
		c := dial(t, cli, ln.Addr().String(), tt.kind)
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(tt.want))
		if _, err := io.ReadFull(s, got); err != nil {
			t.Fatalf("read preamble: %v", err)
		}
		if !bytes.Equal(got, tt.want) {
			t.Errorf("preamble = %q, want %q", got, tt.want)
		}
		s.Close()
		c.Close()
	}
}

// bytesConn is a net.Conn that reads from a byte slice.
type bytesConn struct {
	net.Conn
	r *bytes.Reader
}

func (c bytesConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func FuzzReadPreamble(f *testing.F) {
	f.Add(preamble(KindRaft, "127.0.0.1:7000"))
	f.Add(preamble(KindRPC, "node-1.test:7000"))
	f.Add(preamble(KindRPC, ""))
	f.Add([]byte{'X', 0})
	f.Add([]byte{'R', 200, 'a'})
	f.Add([]byte{})
	f.Add(append(preamble(KindRaftGroup, "127.0.0.1:7000"), 6, 'r', 'e', 'g', '-', 'e', 'u'))
	f.Add(append(preamble(KindRaftGroup, "127.0.0.1:7000"), 2, 'E', 'U'))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, addr, group, err := readPreamble(bytesConn{r: bytes.NewReader(data)})
		if err != nil {
			return
		}
		if kind != KindRaft && kind != KindRPC && kind != KindRaftGroup {
			t.Fatalf("accepted kind %q", kind)
		}
		if (kind == KindRaftGroup) != (group != "") {
			t.Fatalf("readPreamble(%q): kind %q with group %q", data, kind, group)
		}
		if group != "" {
			if err := ValidGroupName(group); err != nil {
				t.Fatalf("readPreamble(%q) accepted group %q: %v", data, group, err)
			}
			if at := 2 + len(addr); len(data) < at+1+len(group) || int(data[at]) != len(group) || string(data[at+1:at+1+len(group)]) != group {
				t.Fatalf("readPreamble(%q) = group %q: not what the bytes say", data, group)
			}
		}
		if len(data) < 2 || Kind(data[0]) != kind || int(data[1]) != len(addr) || string(data[2:2+len(addr)]) != addr {
			t.Fatalf("readPreamble(%q) = %q, %q: not what the bytes say", data, kind, addr)
		}
	})
}

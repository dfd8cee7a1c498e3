package testkit

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// FreeAddr returns a 127.0.0.1 address whose port was free for both TCP
// and UDP a moment ago (gossip uses both). Ports come from below the
// kernel's ephemeral range (32768 and up on Linux), where outgoing
// connections take theirs — a port the kernel picked for a listener could
// be handed to an outgoing connection before the test binds it again —
// and none is given out twice by one test process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 10000 + rand.IntN(22000)
		if portsGiven[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		pc.Close()
		portsGiven[port] = true
		return addr
	}
	t.Fatal("no free port found between 10000 and 32000")
	return ""
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

package transport

import (
	"context"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// benchApply has the shape of the node's forwarded write: an encoded entry
// of a few hundred bytes and a deadline.
type benchApply struct {
	Entry         []byte `msgpack:"entry"`
	TimeoutMillis int64  `msgpack:"timeout_ms"`
}

type benchApplied struct {
	Index uint64 `msgpack:"index"`
	Error string `msgpack:"error"`
	Count int    `msgpack:"count"`
}

func benchTransport(b *testing.B) *Transport {
	b.Helper()
	tr, err := Listen(Config{BindAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	return tr
}

// BenchmarkRPC_ApplyRoundTrip is one forwarded write's RPC over loopback,
// from parallel callers on pooled connections: both sides' framing,
// encoding and decoding, and the syscalls.
func BenchmarkRPC_ApplyRoundTrip(b *testing.B) {
	srv := benchTransport(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv.HandleRPC(NewRPCServer(ctx, map[string]Handler{
		"apply": func(_ context.Context, _ string, dec *msgpack.Decoder) (any, error) {
			var req benchApply
			if err := dec.Decode(&req); err != nil {
				return nil, err
			}
			return benchApplied{Index: uint64(len(req.Entry))}, nil
		},
	}).ServeConn)
	c := NewRPCClient(benchTransport(b))
	defer c.Close()
	entry := make([]byte, 300)
	b.ReportAllocs()
	b.SetParallelism(4)
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for pb.Next() {
			var resp benchApplied
			if err := c.Call(ctx, srv.Addr(), "apply", benchApply{Entry: entry, TimeoutMillis: 1000}, &resp); err != nil {
				b.Fatal(err)
			}
			if resp.Index != uint64(len(entry)) {
				b.Fatalf("answer %+v", resp)
			}
		}
	})
	b.StopTimer()
	// CPU time of both sides together: steadier than ns/op on a shared
	// machine, and what a node pays per forwarded write.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

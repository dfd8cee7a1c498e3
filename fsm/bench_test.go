package fsm

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/events"
)

// Benchmarks. The 1M-session ones build their population once per -count
// (b.Loop runs the function body once) and are skipped with -short; plain
// `go test` runs no benchmark at all.

// tokenGen mints tokens and ids of the real format, from a seeded source.
type tokenGen struct {
	r   *rand.ChaCha8
	buf [32]byte
}

func newTokenGen(seed uint64) *tokenGen {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return &tokenGen{r: rand.NewChaCha8(s)}
}

// token is prefix + 43 base64url characters (256 random bits).
func (g *tokenGen) token(prefix string) string {
	_, _ = g.r.Read(g.buf[:])
	return prefix + base64.RawURLEncoding.EncodeToString(g.buf[:])
}

// id is 22 base64url characters (128 random bits).
func (g *tokenGen) id() string {
	_, _ = g.r.Read(g.buf[:16])
	return base64.RawURLEncoding.EncodeToString(g.buf[:16])
}

// popOptions shapes a benchmark population.
type popOptions struct {
	keepTokens bool               // return the access tokens
	userAgent  func(i int) string // nil: one shared realistic agent
	ip         func(i int) string // nil: 10.x.y.z
	withExtras bool               // every tenth session gets scopes and attributes
}

const benchUserAgent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15"

// buildPopulation applies n SessionCreated events to a new FSM through
// ApplyBatch in batches of 4096, dropping each batch's encoded entries once
// applied, and returns the FSM and (optionally) the access tokens.
func buildPopulation(tb testing.TB, n int, opt popOptions) (*FSM, []string) {
	tb.Helper()
	f := New(Config{})
	g := newTokenGen(uint64(n))
	var tokens []string
	if opt.keepTokens {
		tokens = make([]string, 0, n)
	}
	const batch = 4096
	logs := make([]*raft.Log, 0, batch)
	index := uint64(0)
	flush := func() {
		for i, out := range f.ApplyBatch(logs) {
			if res := out.(*Result); res.Err != nil {
				tb.Fatalf("building the population: entry %d: %v", logs[i].Index, res.Err)
			}
		}
		clear(logs)
		logs = logs[:0]
	}
	for i := range n {
		access, refresh := g.token("sa_"), g.token("sr_")
		if opt.keepTokens {
			tokens = append(tokens, access)
		}
		ev := &events.SessionCreated{
			SessionID:   events.SessionID(g.id()),
			UserID:      events.UserID(fmt.Sprintf("user-%07d", i/4)),
			App:         "default",
			AuthMethod:  events.AuthPassword,
			Device:      events.Device{UserAgent: benchUserAgent, IP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)},
			AccessHash:  events.HashToken(access),
			RefreshHash: events.HashToken(refresh),
		}
		if opt.userAgent != nil {
			ev.Device.UserAgent = opt.userAgent(i)
		}
		if opt.ip != nil {
			ev.Device.IP = opt.ip(i)
		}
		if opt.withExtras && i%10 == 0 {
			ev.Scopes = []string{"profile", "read", "write"}
			ev.Attributes = []events.Attribute{{Key: "role", Value: "member"}, {Key: "tenant", Value: "acme"}}
		}
		index++
		data, err := events.Encode(events.Envelope{Time: t0 + int64(i)*1000, RequestID: g.id(), Event: ev})
		if err != nil {
			tb.Fatal(err)
		}
		logs = append(logs, &raft.Log{Type: raft.LogCommand, Index: index, Data: data})
		if len(logs) == batch {
			flush()
		}
	}
	flush()
	return f, tokens
}

func sizeName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func BenchmarkValidateAccess(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run("sessions="+sizeName(n), func(b *testing.B) {
			if n >= 1_000_000 && testing.Short() {
				b.Skip("1M sessions: skipped with -short")
			}
			f, tokens := buildPopulation(b, n, popOptions{keepTokens: true})
			runtime.GC()
			now := t0 + int64(n)*1000 + minute // every session is active
			// Walk the tokens in a scattered order so that the maps are hit
			// like real traffic hits them, not in insertion order.
			const stride = 1_000_003
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				tok := tokens[i%n]
				i += stride
				s, st := f.ValidateAccess(events.HashToken(tok), now)
				if st != StatusActive || s.ID() == "" {
					b.Fatalf("token %d: %s", i%n, st)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "validations/s")
			b.ReportMetric(float64(n), "sessions")
		})
	}
}

// BenchmarkValidateAccessParallel is ValidateAccess from every core at once
// (the read lock is shared).
func BenchmarkValidateAccessParallel(b *testing.B) {
	const n = 100_000
	f, tokens := buildPopulation(b, n, popOptions{keepTokens: true})
	now := t0 + int64(n)*1000 + minute
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(n)
		for pb.Next() {
			i = (i + 1_000_003) % n
			if _, st := f.ValidateAccess(events.HashToken(tokens[i]), now); st != StatusActive {
				b.Errorf("token %d: %s", i, st)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "validations/s")
}

func BenchmarkApplySessionCreated(b *testing.B) {
	// One op is one entry. A pool of pre-encoded entries is applied to an
	// FSM that grows from empty to the pool's size; then, with the timer
	// stopped, a new FSM starts over.
	const pool = 1 << 16
	g := newTokenGen(1)
	logs := make([]*raft.Log, pool)
	for i := range logs {
		ev := &events.SessionCreated{
			SessionID:   events.SessionID(g.id()),
			UserID:      events.UserID(fmt.Sprintf("user-%07d", i/4)),
			App:         "default",
			AuthMethod:  events.AuthPassword,
			Device:      events.Device{UserAgent: benchUserAgent, IP: "203.0.113.7"},
			AccessHash:  events.HashToken(g.token("sa_")),
			RefreshHash: events.HashToken(g.token("sr_")),
		}
		data, err := events.Encode(events.Envelope{Time: t0 + int64(i), RequestID: g.id(), Event: ev})
		if err != nil {
			b.Fatal(err)
		}
		logs[i] = &raft.Log{Type: raft.LogCommand, Index: uint64(i + 1), Data: data}
	}
	for _, batch := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			f := New(Config{})
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			next := 0
			for done := 0; done < b.N; {
				if next == pool {
					b.StopTimer()
					if got := f.Stats().Sessions; got != pool {
						b.Fatalf("%d sessions after %d creates", got, pool)
					}
					f = New(Config{})
					runtime.GC()
					next = 0
					b.StartTimer()
				}
				k := min(batch, pool-next, b.N-done)
				f.ApplyBatch(logs[next : next+k])
				next += k
				done += k
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/entry")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// bufSink is a raft.SnapshotSink over a bytes.Buffer.
type bufSink struct{ *bytes.Buffer }

func (bufSink) ID() string    { return "bench" }
func (bufSink) Cancel() error { return nil }
func (bufSink) Close() error  { return nil }

// heapSampler records the peak of the heap's live-and-unswept object bytes
// (HeapAlloc) every 10ms until stopped.
type heapSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak uint64
}

const heapObjectsMetric = "/memory/classes/heap/objects:bytes"

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: heapObjectsMetric}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), peak: heapObjects()}
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			h.peak = max(h.peak, heapObjects())
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	h.done.Wait()
	return max(h.peak, heapObjects())
}

func BenchmarkSnapshotRestore1M(b *testing.B) {
	if testing.Short() {
		b.Skip("1M sessions: skipped with -short")
	}
	const n = 1_000_000
	src, _ := buildPopulation(b, n, popOptions{withExtras: true})
	var persistTotal, restoreTotal time.Duration
	var peak, base, after uint64
	size := uint64(n * 400) // a guess, for the first buffer
	iters := 0
	for b.Loop() {
		iters++
		// A buffer of the right size up front: what is timed is Persist, not
		// the growth of a 300 MB bytes.Buffer.
		var buf bytes.Buffer
		buf.Grow(int(size + size/8))
		runtime.GC()
		start := time.Now()
		snap, err := src.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		if err := snap.Persist(bufSink{&buf}); err != nil {
			b.Fatal(err)
		}
		persistTotal += time.Since(start)
		size = uint64(buf.Len())

		runtime.GC()
		base = heapObjects() // the source state and the snapshot bytes
		dst := New(Config{})
		sampler := startHeapSampler()
		start = time.Now()
		if err := dst.Restore(&closeTracker{Reader: bytes.NewReader(buf.Bytes())}); err != nil {
			b.Fatal(err)
		}
		restoreTotal += time.Since(start)
		peak = sampler.Stop()
		if dst.Stats().Sessions != n {
			b.Fatalf("restored %d sessions", dst.Stats().Sessions)
		}
		runtime.GC()
		after = heapObjects()
		runtime.KeepAlive(dst)
		runtime.KeepAlive(&buf)
	}
	b.ReportMetric(persistTotal.Seconds()/float64(iters), "persist-s")
	b.ReportMetric(restoreTotal.Seconds()/float64(iters), "restore-s")
	b.ReportMetric(float64(size)/1e6, "snapshot-MB")
	b.ReportMetric(float64(peak)/1e6, "restore-peak-heap-MB")
	b.ReportMetric(float64(peak-base)/1e6, "restore-peak-growth-MB")
	b.ReportMetric(float64(after-base)/1e6, "restored-state-MB")
	runtime.KeepAlive(src)
}

func BenchmarkMemoryPerSession(b *testing.B) {
	if testing.Short() {
		b.Skip("1M sessions: skipped with -short")
	}
	const n = 1_000_000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f, _ := buildPopulation(b, n, popOptions{
			// A distinct 100-byte agent per session (the figure), so
			// nothing is shared.
			userAgent: func(i int) string {
				return fmt.Sprintf("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/ #%07d", i)
			},
			ip: func(i int) string { return fmt.Sprintf("10.%02d.%d.%02d", i%100, i/100%10, i/1000%100) },
		})
		runtime.GC()
		runtime.ReadMemStats(&after)
		if s, ok := f.Session(firstSession(f)); !ok || len(s.UserAgent()) != 100 || len(s.IP()) != 10 {
			b.Fatalf("population is not as intended: agent %d bytes, ip %q", len(s.UserAgent()), s.IP())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/session")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "heap-MB")
		runtime.KeepAlive(f)
	}
}

// firstSession names any stored session.
func firstSession(f *FSM) events.SessionID {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, s := range f.st.sessions.primary {
		return s.ID()
	}
	return ""
}

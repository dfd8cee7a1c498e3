package testkit

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// recorder is a testing.TB that keeps what a helper reports instead of
// failing the test. Methods it does not define panic (the embedded TB is
// nil): the helpers must not call them.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	logs     []string
	fatal    string
	cleanups []func()
}

func (r *recorder) Helper() {}

func (r *recorder) Log(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprint(args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fatal = fmt.Sprintf(format, args...)
}

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// cleanup runs the registered cleanups, last first, as testing does.
func (r *recorder) cleanup() {
	for _, f := range slices.Backward(r.cleanups) {
		f()
	}
}

func (r *recorder) logged() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.logs)
}

func TestWait_TrueAtOnceWhenTheConditionHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !Wait(time.Second, func() bool { return true }) {
			t.Fatal("Wait = false for a condition that holds")
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Wait slept %s before a first poll that succeeded", d)
		}
	})
}

func TestWait_PollsWithABackoffUntilTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		polls := 0
		if Wait(time.Second, func() bool { polls++; return false }) {
			t.Fatal("Wait = true for a condition that never holds")
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("Wait gave up after %s, want the limit of 1s", d)
		}
		// 1+2+4+8+16 ms, then 20 ms pauses: about 55 polls in a second.
		if polls < 40 || polls > 70 {
			t.Errorf("%d polls in a second, want about 55 (a short backoff, neither a busy loop nor a long pause)", polls)
		}
	})
}

func TestWait_SeesTheConditionSoonAfterItHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		at := start.Add(300 * time.Millisecond)
		if !Wait(time.Second, func() bool { return !time.Now().Before(at) }) {
			t.Fatal("Wait = false for a condition that holds after 300ms")
		}
		if late := time.Since(at); late < 0 || late > maxPoll {
			t.Errorf("Wait saw the condition %s after it held, want at most %s", late, maxPoll)
		}
	})
}

func TestEventually_FailsNamingWhatItWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		Eventually(r, 50*time.Millisecond, "the moon", func() bool { return false })
		if want := "timed out after 50ms waiting for the moon"; r.fatal != want {
			t.Errorf("Eventually failed with %q, want %q", r.fatal, want)
		}
		r = &recorder{}
		n := 0
		Eventually(r, time.Second, "three polls", func() bool { n++; return n == 3 })
		if r.fatal != "" || n != 3 {
			t.Errorf("Eventually failed with %q after %d polls of a condition that holds at the third", r.fatal, n)
		}
	})
}

func TestSyncBuffer_ConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				fmt.Fprintf(&b, "w%d-%d\n", i, j)
				_ = b.String() // a reader at the same time
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for i := range 8 {
		if !slices.Contains(lines, fmt.Sprintf("w%d-99", i)) {
			t.Errorf("writer %d's last line is missing", i)
		}
	}
}

func TestClock_MovesOnlyWhenTold(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c := NewClock(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("Now = %v, want the start %v", got, t0)
	}
	if got := c.Advance(time.Hour); !got.Equal(t0.Add(time.Hour)) || !c.Now().Equal(got) {
		t.Errorf("Advance(1h) = %v, Now %v, want %v", got, c.Now(), t0.Add(time.Hour))
	}
	if got := c.Advance(-2 * time.Hour); !got.Equal(t0.Add(-time.Hour)) {
		t.Errorf("Advance(-2h) = %v, want %v", got, t0.Add(-time.Hour))
	}
	t1 := t0.AddDate(1, 0, 0)
	c.Set(t1)
	if got := c.Now(); !got.Equal(t1) {
		t.Errorf("Now after Set = %v, want %v", got, t1)
	}

	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Second)
				c.Now()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), t1.Add(1000*time.Second); !got.Equal(want) {
		t.Errorf("after 1000 concurrent one-second steps Now = %v, want %v", got, want)
	}
	var zero Clock
	if !zero.Now().IsZero() {
		t.Errorf("a zero Clock reads %v", zero.Now())
	}
}

func TestLogWriter_ToTheTestLogUntilCleanup(t *testing.T) {
	r := &recorder{}
	w := NewLogWriter(r)
	n1 := w.Prefixed("n1: ")
	fmt.Fprint(w, "plain line\n")
	fmt.Fprint(n1, "from n1\n")
	fmt.Fprint(n1.Prefixed("raft: "), "nested")
	want := []string{"plain line", "n1: from n1", "n1: raft: nested"}
	if got := r.logged(); !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
	if len(r.cleanups) != 1 {
		t.Fatalf("%d cleanups registered, want 1", len(r.cleanups))
	}
	r.cleanup()
	if k, err := fmt.Fprint(n1, "after the test\n"); k != len("after the test\n") || err != nil {
		t.Errorf("write after cleanup: %d, %v; want it accepted and dropped", k, err)
	}
	fmt.Fprint(w, "after the test\n")
	if got := r.logged(); len(got) != len(want) {
		t.Errorf("logged after cleanup: %q", got[len(want):])
	}
}

func TestLogger_FiltersByLevel(t *testing.T) {
	r := &recorder{}
	log := Logger(r, slog.LevelWarn)
	log.Info("quiet")
	log.Warn("loud", "k", "v")
	got := r.logged()
	if len(got) != 1 || !strings.Contains(got[0], "level=WARN") || !strings.Contains(got[0], "msg=loud k=v") {
		t.Errorf("logged %q, want the one warning", got)
	}
}

func TestFreeAddr_ListensOnLoopbackAndNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		addr := FreeAddr(t)
		if seen[addr] {
			t.Fatalf("%s given twice", addr)
		}
		seen[addr] = true
		host, _, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("FreeAddr = %q, want 127.0.0.1:port", addr)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen TCP on %s: %v", addr, err)
		}
		l.Close()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("listen UDP on %s: %v", addr, err)
		}
		pc.Close()
	}
}

func TestCA_IssuesCertificatesItVerifies(t *testing.T) {
	ca := NewCA(t, "test-ca")
	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(caPEM); block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("CertFile holds no PEM certificate: %q", caPEM)
	}
	load := func(certFile, keyFile string) *x509.Certificate {
		t.Helper()
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatalf("LoadX509KeyPair: %v", err)
		}
		return pair.Leaf
	}
	node := load(ca.Issue("node1", net.IPv4(127, 0, 0, 1)))
	if node.Subject.CommonName != "node1" {
		t.Errorf("common name %q", node.Subject.CommonName)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := node.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("node certificate for 127.0.0.1 (usage %v): %v", usage, err)
		}
	}
	noSAN := load(ca.Issue("bare"))
	if len(noSAN.IPAddresses)+len(noSAN.DNSNames) != 0 {
		t.Errorf("certificate without IPs has SANs %v %v", noSAN.IPAddresses, noSAN.DNSNames)
	}
	if _, err := noSAN.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "127.0.0.1"}); err == nil {
		t.Error("a certificate without SANs verified for 127.0.0.1")
	}
	if _, err := node.Verify(x509.VerifyOptions{Roots: NewCA(t, "test-ca").Pool(), DNSName: "127.0.0.1"}); err == nil {
		t.Error("a certificate verified under another CA of the same name")
	}
}

func TestSend_BodiesAndHeaders(t *testing.T) {
	type seen struct {
		contentType, body, header string
		length                    int64
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Header.Get("Content-Type"), string(body), r.Header.Get("X-Test"), r.ContentLength}
		w.Header().Set("X-Answer", "yes")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "  short and stout\n")
	}))
	defer srv.Close()
	for _, c := range []struct {
		name   string
		body   any
		header []string
		want   seen
	}{
		{"none", nil, nil, seen{length: 0}},
		{"JSON", map[string]int{"a": 1}, []string{"X-Test", "v"}, seen{"application/json", `{"a":1}`, "v", 7}},
		{"JSON, its type replaced", []string{"x"}, []string{"Content-Type", "text/plain"}, seen{"text/plain", `["x"]`, "", 5}},
		{"raw, no type", Raw("a=b"), nil, seen{"", "a=b", "", 3}},
		{"raw with a type", Raw("{"), []string{"Content-Type", "application/json"}, seen{"application/json", "{", "", 1}},
		{"reader, chunked", strings.NewReader("stream"), nil, seen{"", "stream", "", -1}},
	} {
		a, err := Send(srv.Client(), http.MethodPost, srv.URL+"/x", c.body, c.header...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if s := <-got; s != c.want {
			t.Errorf("%s: server saw %+v, want %+v", c.name, s, c.want)
		}
		if a.Status != http.StatusTeapot || a.Header.Get("X-Answer") != "yes" || string(a.Body) != "  short and stout\n" {
			t.Errorf("%s: answer %+v", c.name, a)
		}
		if a.String() != "418 short and stout" {
			t.Errorf("%s: String() = %q", c.name, a.String())
		}
	}
	if _, err := Send(srv.Client(), http.MethodPost, srv.URL, func() {}); err == nil {
		t.Error("Send marshalled a func")
	}
}

func TestMetrics_GatheredAndParsedAlike(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "things_total", Help: "Things."}, []string{"kind", "size"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "level", Help: "Level."})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "took_seconds", Help: "Took."})
	reg.MustRegister(c, g, h)
	c.WithLabelValues("a", "big").Add(3)
	c.WithLabelValues("b", "big").Add(5)
	g.Set(-2.5)
	h.Observe(1)
	h.Observe(2)

	var scrape bytes.Buffer
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&scrape, f); err != nil {
			t.Fatal(err)
		}
	}
	for name, m := range map[string]Metrics{"gathered": Gather(t, reg), "parsed": ParseMetrics(t, scrape.Bytes())} {
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
			ok     bool
		}{
			{"things_total", []string{"kind", "b"}, 5, true},
			{"things_total", []string{"size", "big", "kind", "a"}, 3, true},
			{"things_total", nil, 3, true}, // the first sample
			{"things_total", []string{"kind", "c"}, 0, false},
			{"things_total", []string{"kind", "a", "size", "small"}, 0, false},
			{"level", nil, -2.5, true},
			{"took_seconds", nil, 2, true},
			{"absent", nil, 0, false},
		} {
			if v, ok := m.Get(c.name, c.labels...); v != c.want || ok != c.ok {
				t.Errorf("%s: Get(%s, %q) = %v, %v; want %v, %v", name, c.name, c.labels, v, ok, c.want, c.ok)
			}
			if v := m.Value(c.name, c.labels...); v != c.want {
				t.Errorf("%s: Value(%s, %q) = %v, want %v", name, c.name, c.labels, v, c.want)
			}
		}
	}
}

func TestGolden_ReadsAndUpdates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "testdata", "x.golden")
	r := &recorder{}
	if got := Golden(r, path, []byte("new"), false); got != nil || !strings.Contains(r.fatal, "-update") {
		t.Errorf("missing file: %q, failure %q; want a failure naming -update", got, r.fatal)
	}
	if got := Golden(t, path, []byte("v1"), true); string(got) != "v1" {
		t.Errorf("after an update: %q", got)
	}
	if got := Golden(t, path, []byte("v2"), false); string(got) != "v1" {
		t.Errorf("without update: %q, want the file's v1", got)
	}
}

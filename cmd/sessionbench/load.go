package main

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// requestFunc sends request number seq from worker w and returns the HTTP
// status (0 when there was none) and a transport or decoding error.
type requestFunc func(ctx context.Context, w int, seq int64) (status int, err error)

// tally is what one worker saw; workers never share one, so recording
// takes no lock.
type tally struct {
	hist     histogram
	errors   map[string]int64
	firstErr string
}

// outcome is one run of the workers.
type outcome struct {
	tallies   []*tally
	elapsed   time.Duration
	cpu       time.Duration // user and system CPU time of this process
	stoppedBy string        // "requests", "duration" or "timeout"
}

// drive runs c workers that send requests until limit requests have been
// started or the deadline has passed, whichever comes first (or ctx ends).
// A request in flight at the deadline is finished and counted; none starts
// after it. Every request is bounded by the client's timeout and ctx, so
// drive returns at most a request timeout after the deadline.
func drive(ctx context.Context, c int, limit int64, d time.Duration, want int, do requestFunc) outcome {
	var next atomic.Int64
	tallies := make([]*tally, c)
	cpu0 := processCPU()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range c {
		t := &tally{errors: map[string]int64{}}
		tallies[w] = t
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				seq := next.Add(1) - 1
				if seq >= limit {
					return
				}
				status, err := do(ctx, w, seq)
				t.hist.record(int64(time.Since(t0)))
				if err != nil || status != want {
					t.fail(status, err)
				}
			}
		})
	}
	wg.Wait()
	out := outcome{tallies: tallies, elapsed: time.Since(start), cpu: processCPU() - cpu0, stoppedBy: "duration"}
	switch {
	case ctx.Err() != nil:
		out.stoppedBy = "timeout"
	case next.Load() >= limit:
		out.stoppedBy = "requests"
	}
	return out
}

// processCPU is the user and system CPU time this process has used so far
// (0 where the system does not say). With --local the cluster runs in this
// process, so a phase's figure covers the nodes and the load generator.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fail counts a failed request by its status, or by the kind of transport
// error when there was no status.
func (t *tally) fail(status int, err error) {
	key := strconv.Itoa(status)
	if status == 0 || err != nil {
		key = errorKind(err)
		if t.firstErr == "" && err != nil {
			t.firstErr = err.Error()
		}
	}
	t.errors[key]++
}

func errorKind(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "no_status"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, errDecode):
		return "bad_body"
	}
	return "transport"
}

var errDecode = errors.New("undecodable answer")

// profiler writes the CPU profile and the allocation profile: of the
// whole run (phase "") or of the measured part of one phase.
type profiler struct {
	path, memPath, phase string
	f                    *os.File
	on                   bool
}

// begin starts profiling when phase is the one profiled ("" is the run).
func (p *profiler) begin(phase string) error {
	if (p.path == "" && p.memPath == "") || phase != p.phase || p.on {
		return nil
	}
	if p.path != "" {
		if p.f == nil {
			f, err := os.Create(p.path)
			if err != nil {
				return err
			}
			p.f = f
		}
		if err := pprof.StartCPUProfile(p.f); err != nil {
			return err
		}
	}
	if p.memPath != "" {
		// The allocation profile counts from the process's start: this
		// snapshot, given to pprof's -diff_base, takes away cluster start
		// and warm-up.
		if err := writeAllocs(p.memPath + ".base"); err != nil {
			return err
		}
	}
	p.on = true
	return nil
}

// end stops profiling at the end of the profiled phase.
func (p *profiler) end(phase string) error {
	if p.on && phase == p.phase {
		return p.stop()
	}
	return nil
}

func (p *profiler) stop() error {
	p.on = false
	if p.path != "" {
		pprof.StopCPUProfile()
	}
	if p.memPath == "" {
		return nil
	}
	return writeAllocs(p.memPath)
}

// writeAllocs writes the allocation profile as of now to path.
func writeAllocs(path string) error {
	runtime.GC() // the profile is as of the last collection
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (p *profiler) close() error {
	var err error
	if p.on {
		err = p.stop()
	}
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
	return err
}

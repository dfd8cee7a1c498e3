package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestIdle_RejectsBadArguments(t *testing.T) {
	expectRefused(t, [][]string{
		{"idle", "--duration", "0s"},
		{"idle", "--duration", "2h"},
		{"idle", "--nodes", "0"},
		{"idle", "--nodes", "10"},
		{"idle", "--settle", "-1s"},
		{"idle", "--pids", "1", "--sessiond", "/bin/true"},
		{"idle", "--pids", "1", "--consul", "/bin/true"},
		{"idle", "--pids", "0"},
		{"idle", "--sessiond", "/bin/true", "--consul", "/bin/true"},
		{"idle", "extra"},
	})
}

func TestParseProcStatCPU_CountsUserAndSystemTime(t *testing.T) {
	// A command name may hold spaces and parentheses; utime 250 and stime
	// 130 ticks are fields 14 and 15.
	line := []byte("4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 130 0 0 20 0 12 0 100 0 0")
	got, err := parseProcStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3800 * time.Millisecond; got != want {
		t.Errorf("cpu %s, want %s", got, want)
	}
	for _, bad := range []string{"", "4242 (x) S 1 2", "4242 (x) S 1 2 3 4 5 6 7 8 9 10 x 130"} {
		if _, err := parseProcStatCPU([]byte(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// With --pids the tool measures processes it did not start: here, itself.
func TestIdle_MeasuresGivenProcesses(t *testing.T) {
	out, err := runTool(t, "idle", "--pids", strconv.Itoa(os.Getpid()), "--duration", "1s", "--settle", "0s", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep idleReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Kind != "pids" || len(rep.Nodes) != 1 || rep.Nodes[0].PID != os.Getpid() || rep.Nodes[0].CPUPct < 0 {
		t.Errorf("report %+v", rep)
	}
}

// A short real run: three sessiond processes, idle for two seconds.
func TestIdle_LocalClusterOfProcesses(t *testing.T) {
	bin := sessiondBinary(t)
	out, err := runTool(t, "idle", "--sessiond", bin, "--duration", "2s", "--settle", "500ms", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep idleReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	leaders := 0
	for _, n := range rep.Nodes {
		if n.Role == "leader" {
			leaders++
		}
		if n.PID <= 0 || n.CPUPct < 0 {
			t.Errorf("node %+v", n)
		}
	}
	if rep.Kind != "sessiond" || len(rep.Nodes) != 3 || leaders != 1 {
		t.Errorf("report %+v", rep)
	}
	t.Logf("idle CPU: %.2f%% of one core in total", rep.TotalPct)
}

var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// sessiondBinary builds cmd/sessiond once for the tests that run it as
// processes.
func sessiondBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds sessiond and runs it as three processes")
	}
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "sessionbench-test-")
		if built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "sessiond")
		out, err := exec.Command("go", "build", "-o", built.bin, "github.com/sessiond/sessiond/cmd/sessiond").CombinedOutput()
		if err != nil {
			built.err = &buildError{err: err, out: string(out)}
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build sessiond: " + e.err.Error() + "\n" + e.out }

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A cluster of server processes on 127.0.0.1 that the idle and failover
// commands start, kill and restart: sessiond nodes with their production
// timings, or, to compare, Consul servers with the same Raft timings
// (raft_multiplier=1: heartbeat and election timeouts 1 s).

// flavor is what differs between the servers a procCluster runs.
type flavor interface {
	// kind names the servers ("sessiond", "consul").
	kind() string
	// prepare picks the ports of n nodes and writes what they share into dir.
	prepare(dir string, n int) error
	// args is node i's command line (after the binary).
	args(dir string, i int) []string
	// view is node i's view of the cluster: whether it is ready to serve,
	// and the name of the node it takes for the leader ("" when none).
	view(ctx context.Context, c *http.Client, i int) (ready bool, leader string, err error)
	// write makes one replicated write through node i; seq is unique.
	write(ctx context.Context, c *http.Client, i int, seq uint64) error
	// state is node i's Raft role (Follower, Candidate, Leader) and the
	// name of the node it takes for the leader ("" when none).
	state(ctx context.Context, c *http.Client, i int) (role, leader string, err error)
}

// procCluster is n server processes and their data under dir.
type procCluster struct {
	fl     flavor
	bin    string
	dir    string
	client *http.Client
	mu     sync.Mutex
	nodes  []*procNode
}

// procNode is one server; proc is nil while it is not running.
type procNode struct {
	name string
	proc *runningProc
}

type runningProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been reaped
}

// clusterWait bounds a wait for the cluster to form or to be whole again.
const clusterWait = 90 * time.Second

// startProcCluster starts n nodes of fl from bin, data in a new temporary
// directory, and waits until the cluster is whole. The ports are picked
// free just before the start; when another program takes one in between
// (a node exits at once), it starts again on other ports, up to three times.
func startProcCluster(ctx context.Context, fl flavor, bin string, n int) (*procCluster, error) {
	var errs []error
	for range 3 {
		pc, err := startProcClusterOnce(ctx, fl, bin, n)
		if err == nil {
			return pc, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errExited) || ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// errExited reports that a node's process ended while the cluster formed.
var errExited = errors.New("exited")

func startProcClusterOnce(ctx context.Context, fl flavor, bin string, n int) (_ *procCluster, err error) {
	dir, err := os.MkdirTemp("", "sessionbench-"+fl.kind()+"-")
	if err != nil {
		return nil, err
	}
	pc := &procCluster{fl: fl, bin: bin, dir: dir, client: &http.Client{
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true},
	}}
	defer func() {
		if err != nil {
			pc.close()
		}
	}()
	if err := fl.prepare(dir, n); err != nil {
		return nil, err
	}
	for i := range n {
		pc.nodes = append(pc.nodes, &procNode{name: nodeName(i)})
		if err := pc.start(i); err != nil {
			return nil, err
		}
	}
	if _, err := pc.waitWhole(ctx, clusterWait); err != nil {
		return nil, err
	}
	return pc, nil
}

func nodeName(i int) string { return fmt.Sprintf("node%d", i+1) }

// start runs node i, its output appended to <dir>/<name>.log.
func (pc *procCluster) start(i int) error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	nd := pc.nodes[i]
	if nd.proc != nil {
		return fmt.Errorf("%s is already running", nd.name)
	}
	logFile, err := os.OpenFile(filepath.Join(pc.dir, nd.name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(pc.bin, pc.fl.args(pc.dir, i)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The servers die with this tool, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", nd.name, err)
	}
	p := &runningProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	nd.proc = p
	return nil
}

// kill ends node i with SIGKILL and waits until it is gone.
func (pc *procCluster) kill(i int) error {
	pc.mu.Lock()
	p := pc.nodes[i].proc
	pc.nodes[i].proc = nil
	pc.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%s is not running", pc.nodes[i].name)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		return err
	}
	<-p.exited
	return nil
}

// pids are the running nodes' process ids (0 for a node not running).
func (pc *procCluster) pids() []int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	out := make([]int, len(pc.nodes))
	for i, nd := range pc.nodes {
		if nd.proc != nil {
			out[i] = nd.proc.cmd.Process.Pid
		}
	}
	return out
}

func (pc *procCluster) running(i int) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	p := pc.nodes[i].proc
	if p == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// index is the position of the node named name, or -1.
func (pc *procCluster) index(name string) int {
	return slices.IndexFunc(pc.nodes, func(nd *procNode) bool { return nd.name == name })
}

// whole reports whether every node runs and is ready, and all name the same
// leader; it returns that leader's index.
func (pc *procCluster) whole(ctx context.Context) (int, bool) {
	leader := ""
	for i := range pc.nodes {
		if !pc.running(i) {
			return -1, false
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ready, l, err := pc.fl.view(ctx, pc.client, i)
		cancel()
		if err != nil || !ready || l == "" || (leader != "" && l != leader) {
			return -1, false
		}
		leader = l
	}
	li := pc.index(leader)
	return li, li >= 0
}

// waitWhole waits up to limit until the cluster is whole, and returns the
// leader's index.
func (pc *procCluster) waitWhole(ctx context.Context, limit time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if li, ok := pc.whole(ctx); ok {
			return li, nil
		}
		for i := range pc.nodes {
			if pc.nodes[i].proc != nil && !pc.running(i) {
				return -1, fmt.Errorf("%s %w; its log: %s", pc.nodes[i].name, errExited, pc.logTail(i))
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("the %s cluster was not whole (every node ready, one leader) within %s: %w",
				pc.fl.kind(), limit, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// logTail is the end of node i's log, for error messages.
func (pc *procCluster) logTail(i int) string {
	data, err := os.ReadFile(filepath.Join(pc.dir, pc.nodes[i].name+".log"))
	if err != nil {
		return err.Error()
	}
	if len(data) > 600 {
		data = data[len(data)-600:]
	}
	return strings.TrimSpace(string(data))
}

// close stops every node (SIGTERM, then SIGKILL after a grace period) and
// removes the data.
func (pc *procCluster) close() {
	pc.mu.Lock()
	var procs []*runningProc
	for _, nd := range pc.nodes {
		if nd.proc != nil {
			procs = append(procs, nd.proc)
			nd.proc = nil
		}
	}
	pc.mu.Unlock()
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	grace := time.After(15 * time.Second)
	for _, p := range procs {
		select {
		case <-p.exited:
		case <-grace:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	pc.client.CloseIdleConnections()
	_ = os.RemoveAll(pc.dir)
}

// freePorts are k distinct 127.0.0.1 ports, free for TCP and UDP a moment
// ago.
func freePorts(k int) ([]int, error) {
	var out []int
	for len(out) < k {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if !slices.Contains(out, port) {
			out = append(out, port)
		}
	}
	return out, nil
}

// sessiondFlavor runs sessiond nodes that join each other through gossip
// with --bootstrap-expect, with the production defaults otherwise.
type sessiondFlavor struct {
	apiKey string
	ports  [][3]int // http, raft, gossip of each node
}

func (f *sessiondFlavor) kind() string { return "sessiond" }

func (f *sessiondFlavor) prepare(dir string, n int) error {
	ports, err := freePorts(3 * n)
	if err != nil {
		return err
	}
	f.ports = make([][3]int, n)
	for i := range n {
		f.ports[i] = [3]int{ports[3*i], ports[3*i+1], ports[3*i+2]}
	}
	f.apiKey = "sb_" + randomKey()
	if err := os.WriteFile(filepath.Join(dir, "api.key"), []byte(f.apiKey+"\n"), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cookie.key"), []byte(randomKey()+"\n"), 0o600)
}

// randomKey is 256 random bits in base64url.
func randomKey() string {
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

func (f *sessiondFlavor) args(dir string, i int) []string {
	name := nodeName(i)
	args := []string{
		"--node-id", name,
		"--data-dir", filepath.Join(dir, name),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", f.ports[i][0]),
		"--raft-addr", fmt.Sprintf("127.0.0.1:%d", f.ports[i][1]),
		"--gossip-addr", fmt.Sprintf("127.0.0.1:%d", f.ports[i][2]),
		"--api-key-file", filepath.Join(dir, "api.key"),
		"--cookie-key-file", filepath.Join(dir, "cookie.key"),
		"--log-level", "warn",
	}
	if n := len(f.ports); n > 1 {
		var join []string
		for j, p := range f.ports {
			if j != i {
				join = append(join, fmt.Sprintf("127.0.0.1:%d", p[2]))
			}
		}
		args = append(args, "--bootstrap-expect", strconv.Itoa(n), "--join", strings.Join(join, ","))
	}
	return args
}

func (f *sessiondFlavor) url(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", f.ports[i][0]) }

func (f *sessiondFlavor) view(ctx context.Context, c *http.Client, i int) (bool, string, error) {
	status, _, err := doHTTP(ctx, c, http.MethodGet, f.url(i)+"/readyz", nil, nil)
	if err != nil || status != http.StatusOK {
		return false, "", err
	}
	status, body, err := doHTTP(ctx, c, http.MethodGet, f.url(i)+"/v1/cluster", []string{"X-API-Key", f.apiKey}, nil)
	if err != nil {
		return false, "", err
	}
	if status != http.StatusOK {
		return false, "", fmt.Errorf("GET /v1/cluster: status %d", status)
	}
	var st struct {
		Leader struct {
			ID string `json:"id"`
		} `json:"leader"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return false, "", err
	}
	return true, st.Leader.ID, nil
}

func (f *sessiondFlavor) state(ctx context.Context, c *http.Client, i int) (string, string, error) {
	status, body, err := doHTTP(ctx, c, http.MethodGet, f.url(i)+"/v1/cluster", []string{"X-API-Key", f.apiKey}, nil)
	if err != nil {
		return "", "", err
	}
	if status != http.StatusOK {
		return "", "", fmt.Errorf("GET /v1/cluster: status %d", status)
	}
	var st struct {
		State  string `json:"raft_state"`
		Leader struct {
			ID string `json:"id"`
		} `json:"leader"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return "", "", err
	}
	return st.State, st.Leader.ID, nil
}

func (f *sessiondFlavor) write(ctx context.Context, c *http.Client, i int, seq uint64) error {
	body := fmt.Appendf(nil, `{"user_id":"failover-%d","app":"bench"}`, seq%1000)
	status, data, err := doHTTP(ctx, c, http.MethodPost, f.url(i)+"/v1/sessions",
		[]string{"X-API-Key", f.apiKey, "Content-Type", "application/json"}, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return fmt.Errorf("status %d: %s", status, truncate(data, 120))
	}
	return nil
}

// consulFlavor runs Consul servers with the same Raft timings as sessiond
// (raft_multiplier=1), DNS and gRPC off; a write is a KV put.
type consulFlavor struct {
	ports [][4]int // http, server (Raft and RPC), serf LAN, serf WAN of each node
}

func (f *consulFlavor) kind() string { return "consul" }

func (f *consulFlavor) prepare(_ string, n int) error {
	ports, err := freePorts(4 * n)
	if err != nil {
		return err
	}
	f.ports = make([][4]int, n)
	for i := range n {
		f.ports[i] = [4]int{ports[4*i], ports[4*i+1], ports[4*i+2], ports[4*i+3]}
	}
	return nil
}

func (f *consulFlavor) args(dir string, i int) []string {
	p := f.ports[i]
	args := []string{"agent", "-server",
		"-node", nodeName(i),
		"-data-dir", filepath.Join(dir, nodeName(i)),
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-bootstrap-expect", strconv.Itoa(len(f.ports)),
		"-log-level", "warn",
		"-http-port", strconv.Itoa(p[0]), "-server-port", strconv.Itoa(p[1]),
		"-serf-lan-port", strconv.Itoa(p[2]), "-serf-wan-port", strconv.Itoa(p[3]),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-hcl", "performance { raft_multiplier = 1 }",
		"-hcl", "disable_update_check = true",
	}
	for j, q := range f.ports {
		if j != i {
			args = append(args, "-retry-join", fmt.Sprintf("127.0.0.1:%d", q[2]))
		}
	}
	return args
}

func (f *consulFlavor) url(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", f.ports[i][0]) }

func (f *consulFlavor) view(ctx context.Context, c *http.Client, i int) (bool, string, error) {
	status, body, err := doHTTP(ctx, c, http.MethodGet, f.url(i)+"/v1/status/leader", nil, nil)
	if err != nil || status != http.StatusOK {
		return false, "", err
	}
	var leader string
	if err := json.Unmarshal(body, &leader); err != nil || leader == "" {
		return false, "", err
	}
	status, body, err = doHTTP(ctx, c, http.MethodGet, f.url(i)+"/v1/status/peers", nil, nil)
	if err != nil || status != http.StatusOK {
		return false, "", err
	}
	var peers []string
	if err := json.Unmarshal(body, &peers); err != nil || len(peers) != len(f.ports) {
		return false, "", err
	}
	for j, p := range f.ports {
		if leader == fmt.Sprintf("127.0.0.1:%d", p[1]) {
			return true, nodeName(j), nil
		}
	}
	return true, "", nil
}

func (f *consulFlavor) state(ctx context.Context, c *http.Client, i int) (string, string, error) {
	status, body, err := doHTTP(ctx, c, http.MethodGet, f.url(i)+"/v1/agent/self", nil, nil)
	if err != nil {
		return "", "", err
	}
	if status != http.StatusOK {
		return "", "", fmt.Errorf("GET /v1/agent/self: status %d", status)
	}
	var self struct {
		Stats struct {
			Raft struct {
				State string `json:"state"`
			} `json:"raft"`
		} `json:"Stats"`
	}
	if err := json.Unmarshal(body, &self); err != nil {
		return "", "", err
	}
	status, body, err = doHTTP(ctx, c, http.MethodGet, f.url(i)+"/v1/status/leader", nil, nil)
	if err != nil {
		return "", "", err
	}
	var leader string
	if status == http.StatusOK {
		_ = json.Unmarshal(body, &leader)
	}
	name := ""
	for j, p := range f.ports {
		if leader == fmt.Sprintf("127.0.0.1:%d", p[1]) {
			name = nodeName(j)
		}
	}
	return self.Stats.Raft.State, name, nil
}

func (f *consulFlavor) write(ctx context.Context, c *http.Client, i int, seq uint64) error {
	status, data, err := doHTTP(ctx, c, http.MethodPut, fmt.Sprintf("%s/v1/kv/sessionbench/%d", f.url(i), seq%1000),
		nil, []byte(strconv.FormatUint(seq, 10)))
	if err != nil {
		return err
	}
	if status != http.StatusOK || !bytes.Equal(bytes.TrimSpace(data), []byte("true")) {
		return fmt.Errorf("status %d: %s", status, truncate(data, 120))
	}
	return nil
}

// doHTTP makes one request; headers are name, value pairs.
func doHTTP(ctx context.Context, c *http.Client, method, url string, headers []string, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, data, err
}

// serverBinary is the server program to run: consul when given, else
// sessiond as given or built from this module into dir.
func serverBinary(ctx context.Context, sessiond, consul, dir string) (flavor, string, error) {
	switch {
	case consul != "" && sessiond != "":
		return nil, "", errors.New("--sessiond and --consul exclude each other")
	case consul != "":
		return &consulFlavor{}, consul, nil
	case sessiond != "":
		return &sessiondFlavor{}, sessiond, nil
	}
	bin := filepath.Join(dir, "sessiond")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/sessiond/sessiond/cmd/sessiond")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("build sessiond (run inside the repository, or give --sessiond): %w\n%s", err, out)
	}
	return &sessiondFlavor{}, bin, nil
}

// pidCPU is the CPU time (user and system, all threads) process pid has
// used, from /proc/<pid>/stat.
func pidCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(data)
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on Linux for
// every architecture's user-space interfaces.
const clockTicks = 100

// parseProcStatCPU reads utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line; the command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseProcStatCPU(line []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(line, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat line")
	}
	f := strings.Fields(string(line[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat line")
	}
	var ticks int64
	for _, s := range f[11:13] { // fields 14 and 15: f[0] is field 3
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat line: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/transport/testkit"
)

// --trusted-proxies (docs/security.md#rate-limits): a bad range refuses the
// start and names the entry; the ranges given (here through
// SESSIOND_TRUSTED_PROXIES, a bare address) decide whose X-Forwarded-For is
// believed.
func TestTrustedProxiesFlag(t *testing.T) {
	bin := buildBinary(t)
	t.Run("BadRangeRefusesToStart", func(t *testing.T) { t.Parallel(); testTrustedProxiesBadRange(t, bin) })
	t.Run("EnvironmentTrustsTheProxy", func(t *testing.T) { t.Parallel(); testTrustedProxiesFromEnvironment(t, bin) })
}

func testTrustedProxiesBadRange(t *testing.T, bin string) {
	for _, c := range []struct {
		env  []string
		args []string
		bad  string
	}{
		{nil, []string{"--trusted-proxies", "10.0.0.0/8,10.0.0.0/33"}, "10.0.0.0/33"},
		{nil, []string{"--trusted-proxies", "10.0.0.0/8", "--trusted-proxies", "fe80::1%eth0"}, "fe80::1%eth0"},
		{[]string{"SESSIOND_TRUSTED_PROXIES=192.0.2.1, proxy.example.com"}, nil, "proxy.example.com"},
	} {
		dataDir := filepath.Join(t.TempDir(), "data")
		args := append([]string{"--data-dir", dataDir, "--http-addr", testkit.FreeAddr(t), "--raft-addr", testkit.FreeAddr(t), "--gossip-addr", testkit.FreeAddr(t)}, c.args...)
		out, err := runToExit(t, bin, c.env, args...)
		if err == nil || !strings.Contains(out, "--trusted-proxies") || !strings.Contains(out, `"`+c.bad+`"`) {
			t.Errorf("sessiond %v %v: err %v, output %q; want a refusal naming --trusted-proxies and %q", c.env, c.args, err, out, c.bad)
		}
		if _, err := os.Stat(dataDir); err == nil {
			t.Errorf("sessiond %v %v: refused, but created its data dir first", c.env, c.args)
		}
	}
}

func testTrustedProxiesFromEnvironment(t *testing.T, bin string) {
	dir := t.TempDir()
	const apiKey = "trusted-proxies-admin-key-0123456789"
	keyFile := filepath.Join(dir, "api.keys")
	if err := os.WriteFile(keyFile, []byte(apiKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr := testkit.FreeAddr(t)
	d := start(t, bin, []string{"SESSIOND_TRUSTED_PROXIES=127.0.0.1"},
		"--data-dir", filepath.Join(dir, "data"), "--http-addr", httpAddr, "--raft-addr", testkit.FreeAddr(t),
		"--gossip-addr", testkit.FreeAddr(t), "--api-key-file", keyFile)
	c := newClient(t, "http://"+httpAddr, apiKey, nil)
	d.waitReady(t, c)
	c.expect(t, "PUT user", c.call(t, true, http.MethodPut, "/v1/users/alice", map[string]string{"password": "correct horse battery staple"}), http.StatusOK)
	a := c.call(t, false, http.MethodPost, "/v1/login", map[string]string{"user_id": "alice", "password": "correct horse battery staple"},
		"X-Forwarded-For", "6.6.6.6, 203.0.113.7")
	c.expect(t, "login through the trusted proxy 127.0.0.1", a, http.StatusCreated)
	var tok tokens
	if err := json.Unmarshal(a.body, &tok); err != nil {
		t.Fatal(err)
	}
	a = c.call(t, true, http.MethodGet, "/v1/sessions/"+tok.SessionID, nil)
	c.expect(t, "GET session", a, http.StatusOK)
	var s struct {
		Device struct {
			IP string `json:"ip"`
		} `json:"device"`
	}
	if err := json.Unmarshal(a.body, &s); err != nil {
		t.Fatal(err)
	}
	if s.Device.IP != "203.0.113.7" {
		t.Errorf("with SESSIOND_TRUSTED_PROXIES=127.0.0.1, a login from 127.0.0.1 with X-Forwarded-For: 6.6.6.6, 203.0.113.7 has device.ip %q, want 203.0.113.7", s.Device.IP)
	}
	d.terminate(t)
}

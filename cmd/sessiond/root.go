package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/httpapi/cookies"
	"github.com/sessiond/sessiond/httpapi/exchange"
	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/transport"
)

// options are the command-line settings of one node.
type options struct {
	nodeID        string
	dataDir       string
	httpAddr      string
	raftAddr      string
	advertiseAddr string
	apiKeyFile    string
	cookieKeyFile string
	issuersFile   string
	accountLogin  string
	loginRate     float64
	loginBurst    int
	proxies       []string
	tlsCert       string
	tlsKey        string
	tlsCA         string
	httpTLSCert   string
	httpTLSKey    string
	gossipAddr    string
	gossipKey     string
	join          []string
	expect        int
	region        string
	regions       []string
	voter         bool
	deadTimeout   time.Duration
	maxStale      time.Duration
	logLevel      string
	logFormat     string
}

func newRootCommand() *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "sessiond",
		Short: "sessiond: a clustered session authority",
		Long: "sessiond issues, validates, refreshes and revokes user sessions. Every change is\n" +
			"replicated through Raft; any node answers reads from memory.\n\n" +
			"Every flag can also be set as an environment variable: --data-dir is SESSIOND_DATA_DIR.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnvironment(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.nodeID, "node-id", "node1", "this node's stable id in the cluster")
	f.StringVar(&o.dataDir, "data-dir", "data", "directory for the Raft log, snapshots and generated keys")
	f.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:8080", "address of the HTTP API")
	f.StringVar(&o.raftAddr, "raft-addr", "127.0.0.1:7000", "address of Raft traffic")
	f.StringVar(&o.advertiseAddr, "advertise-addr", "", "host (or host:port) other nodes reach this node's Raft at (default: the host of --raft-addr)")
	f.StringVar(&o.gossipAddr, "gossip-addr", "127.0.0.1:7946", "address of gossip (memberlist) for discovery")
	f.StringSliceVar(&o.join, "join", nil, "comma-separated gossip addresses of nodes to join")
	f.IntVar(&o.expect, "bootstrap-expect", 0, "bootstrap a new cluster once this many voters are up (0 or 1 without --join: a cluster of this node alone)")
	f.StringVar(&o.region, "region", "default", "region this node runs in")
	f.StringSliceVar(&o.regions, "regions", nil, "comma-separated regions of the whole cluster, the same on every node: with two or more, each region commits its own users' writes in a Raft group of its own and --bootstrap-expect counts voters per region (docs/regions.md)")
	f.BoolVar(&o.voter, "voter", true, "take part in Raft quorum; false makes a read replica")
	f.DurationVar(&o.deadTimeout, "dead-node-timeout", time.Hour, "remove a member from Raft after it has been dead this long (when safe)")
	f.DurationVar(&o.maxStale, "max-stale", 10*time.Second, "how old the state this node vouches for tokens from may be: it validates locally only while it has applied what the leader had applied this long ago, else it confirms through the leader or answers 503")
	f.StringVar(&o.gossipKey, "gossip-key", "", "base64 key (16, 24 or 32 bytes) that encrypts gossip")
	f.StringVar(&o.apiKeyFile, "api-key-file", "", "file of admin API keys, one per line (default: <data-dir>/admin.key, generated on first start; required when joining others)")
	f.StringVar(&o.cookieKeyFile, "cookie-key-file", "", "file of HMAC keys that sign session cookies, one per line; the first signs, all verify (default: <data-dir>/cookie.key, generated on first start; required when joining others)")
	f.StringVar(&o.issuersFile, "trusted-issuers-file", "", "JSON file of identity-provider issuers whose JWTs POST /v1/token/exchange accepts (default: none)")
	f.StringVar(&o.accountLogin, "account-login-url", "", "where the self-service page /account/sessions links a visitor without a session (your application's login page)")
	f.Float64Var(&o.loginRate, "login-rate", httpapi.DefaultLoginRate.PerSecond, "logins and token exchanges a client address may make per second on this node, past --login-burst (0: no limit)")
	f.IntVar(&o.loginBurst, "login-burst", httpapi.DefaultLoginRate.Burst, "logins a client address may make at once before --login-rate applies")
	f.StringSliceVar(&o.proxies, "trusted-proxies", nil, "comma-separated CIDRs (or addresses) of the proxies and load balancers in front of this node: only a request from one of them has its client address read from X-Forwarded-For (right-most hop not in them) or Forwarded (default: none, not even loopback)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate of this node for mutual TLS between nodes (with --tls-key and --tls-ca)")
	f.StringVar(&o.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&o.tlsCA, "tls-ca", "", "PEM certificate of the cluster CA that signs every node's certificate")
	f.StringVar(&o.httpTLSCert, "http-tls-cert", "", "PEM certificate: serve the HTTP API over TLS (with --http-tls-key)")
	f.StringVar(&o.httpTLSKey, "http-tls-key", "", "PEM private key of --http-tls-cert")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "text", "text or json")
	f.VisitAll(func(fl *pflag.Flag) {
		fl.Usage += " [" + envName(fl.Name) + "]"
	})
	cmd.AddCommand(newHealthcheckCommand())
	return cmd
}

func envName(flag string) string {
	return "SESSIOND_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnvironment sets every flag not given on the command line from its
// SESSIOND_* variable.
func applyEnvironment(flags *pflag.FlagSet) error {
	var err error
	flags.VisitAll(func(fl *pflag.Flag) {
		if err != nil || fl.Changed {
			return
		}
		if v, ok := os.LookupEnv(envName(fl.Name)); ok {
			if setErr := fl.Value.Set(v); setErr != nil {
				err = fmt.Errorf("%s=%q: %w", envName(fl.Name), v, setErr)
			}
		}
	})
	return err
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func run(ctx context.Context, o options) error {
	log, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	if (o.httpTLSCert == "") != (o.httpTLSKey == "") {
		return errors.New("--http-tls-cert and --http-tls-key go together")
	}
	clustered := len(o.join) > 0 || o.expect > 1
	if clustered && o.apiKeyFile == "" {
		return errors.New("a node that joins others needs --api-key-file naming a key file shared by all nodes")
	}
	if clustered && o.cookieKeyFile == "" {
		return errors.New("a node that joins others needs --cookie-key-file naming a cookie key file shared by all nodes")
	}
	var tlsCfg *transport.MutualTLS
	files := transport.TLSFiles{Cert: o.tlsCert, Key: o.tlsKey, CA: o.tlsCA}
	if files.Enabled() {
		if tlsCfg, err = transport.LoadMutualTLS(files); err != nil {
			return err
		}
	}
	var gossipKey []byte
	if o.gossipKey != "" {
		if gossipKey, err = base64.StdEncoding.DecodeString(o.gossipKey); err != nil {
			return fmt.Errorf("--gossip-key: not base64: %w", err)
		}
		if n := len(gossipKey); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("--gossip-key: %d bytes; it must decode to 16, 24 or 32", n)
		}
	}
	proxies, err := httpapi.ParseTrustedProxies(o.proxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	keys, err := loadAdminKeys(o, log)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if len(k) < 16 {
			return errors.New("admin API keys must be at least 16 characters")
		}
	}
	cookieKeys, err := loadCookieKeys(o, log)
	if err != nil {
		return err
	}
	var verifier *exchange.Verifier
	if o.issuersFile != "" {
		if verifier, err = exchange.Load(o.issuersFile); err != nil {
			return fmt.Errorf("--trusted-issuers-file: %w", err)
		}
		log.Info("token exchange enabled", "issuers", strings.Join(verifier.Issuers(), ","))
	}
	listener, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}

	cfg := node.Default()
	cfg.NodeID = o.nodeID
	cfg.DataDir = o.dataDir
	cfg.RaftAddr = o.raftAddr
	cfg.AdvertiseAddr = o.advertiseAddr
	cfg.HTTPAddr = advertisedHTTP(o.advertiseAddr, listener.Addr().String())
	cfg.GossipAddr = o.gossipAddr
	cfg.GossipKey = gossipKey
	cfg.Join = o.join
	cfg.Region = o.region
	cfg.Regions = o.regions
	cfg.Voter = o.voter
	cfg.DeadNodeTimeout = o.deadTimeout
	cfg.TLS = tlsCfg
	switch {
	case len(o.regions) > 1 && o.expect > 0:
		// With regions even one voter per region is a cluster to form.
		cfg.BootstrapSelf, cfg.BootstrapExpect = false, o.expect
	case len(o.regions) > 1:
		cfg.BootstrapSelf = false
	case o.expect > 1:
		cfg.BootstrapSelf, cfg.BootstrapExpect = false, o.expect
	case len(o.join) > 0:
		cfg.BootstrapSelf = false // wait to be added by the leader
	}
	cfg.Logger = log
	cfg.MaxStale = o.maxStale
	n, err := node.New(cfg)
	if err != nil {
		listener.Close()
		return err
	}

	apiCfg := httpapi.Default()
	apiCfg.Backend = n
	apiCfg.APIKeys = keys
	apiCfg.Logger = log
	apiCfg.CookieKeys = cookieKeys
	apiCfg.CookieDevMode = cookies.DevMode(listener.Addr().String(), o.httpTLSCert != "")
	apiCfg.Exchange = verifier
	apiCfg.AccountLoginURL = o.accountLogin
	apiCfg.LoginRate = httpapi.LoginRate{PerSecond: o.loginRate, Burst: o.loginBurst}
	apiCfg.TrustedProxies = proxies
	api, err := httpapi.New(apiCfg)
	if err != nil {
		listener.Close()
		n.Close()
		return err
	}

	serveErr := make(chan error, 1)
	go func() {
		if o.httpTLSCert != "" {
			serveErr <- api.ServeTLS(listener, o.httpTLSCert, o.httpTLSKey)
		} else {
			serveErr <- api.Serve(listener)
		}
	}()
	log.Info("sessiond is serving", "http_addr", listener.Addr().String(), "http_tls", o.httpTLSCert != "", "node_tls", tlsCfg != nil,
		"cookie_dev_mode", apiCfg.CookieDevMode, "password_hashing", n.PasswordParams().String(),
		"trusted_proxies", fmt.Sprint(proxies))

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	var runErr error
	select {
	case sig := <-signals:
		log.Info("shutting down", "signal", sig.String())
	case runErr = <-serveErr:
		log.Error("HTTP server stopped", "error", runErr)
	case <-ctxDone(ctx):
	}

	// Order: stop taking requests, finish those in flight, then Raft and the
	// stores (node.Close).
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := api.Shutdown(shutdownCtx); err != nil {
		log.Warn("HTTP shutdown", "error", err)
	}
	if err := n.Close(); err != nil {
		log.Warn("node shutdown", "error", err)
		runErr = errors.Join(runErr, err)
	}
	return runErr
}

// advertisedHTTP is the HTTP address other nodes and tools are told: the
// advertise host, if one is set, with the HTTP listener's port.
func advertisedHTTP(advertise, bound string) string {
	if advertise == "" {
		return bound
	}
	host := advertise
	if h, _, err := net.SplitHostPort(advertise); err == nil {
		host = h
	}
	_, port, _ := net.SplitHostPort(bound)
	return net.JoinHostPort(host, port)
}

func ctxDone(ctx context.Context) <-chan struct{} {
	if ctx == nil {
		return nil
	}
	return ctx.Done()
}

// loadAdminKeys reads the admin keys. Without --api-key-file a key is
// generated into <data-dir>/admin.key (mode 0600) on first start; the key
// itself is never logged.
func loadAdminKeys(o options, log *slog.Logger) ([]string, error) {
	path := o.apiKeyFile
	if path == "" {
		path = filepath.Join(o.dataDir, "admin.key")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			var raw [32]byte
			_, _ = rand.Read(raw[:])
			key := "sk_" + base64.RawURLEncoding.EncodeToString(raw[:])
			if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("write admin key: %w", err)
			}
			log.Info("generated an admin API key", "file", path)
		}
	}
	return readKeyFile(path)
}

// loadCookieKeys reads the cookie signing keys. Without --cookie-key-file a
// key is generated into <data-dir>/cookie.key (mode 0600) on first start.
func loadCookieKeys(o options, log *slog.Logger) (*cookies.Keys, error) {
	path := o.cookieKeyFile
	if path == "" {
		path = filepath.Join(o.dataDir, "cookie.key")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if err := cookies.GenerateKeyFile(path); err != nil {
				return nil, fmt.Errorf("generate cookie key: %w", err)
			}
			log.Info("generated a cookie signing key", "file", path)
		}
	}
	keys, err := cookies.LoadKeys(path)
	if err != nil {
		return nil, fmt.Errorf("cookie key file: %w", err)
	}
	return keys, nil
}

// readKeyFile reads one key per line, skipping blank lines and # comments.
func readKeyFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	var keys []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("key file %s holds no key", path)
	}
	return keys, nil
}

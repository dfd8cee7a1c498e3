package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// newHealthcheckCommand is `sessiond healthcheck`: exit 0 when the local
// node answers /readyz with 200. Images built FROM scratch have no curl, so
// container health checks run this.
func newHealthcheckCommand() *cobra.Command {
	var httpAddr string
	var useTLS bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "exit 0 if the node at --http-addr is ready (for container health checks)",
		Args:  cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnvironment(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, port, err := net.SplitHostPort(httpAddr)
			if err != nil {
				return fmt.Errorf("--http-addr %q: %w", httpAddr, err)
			}
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				host = "127.0.0.1" // bound to every interface: ask over loopback
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			scheme, client := "http", http.DefaultClient
			if useTLS {
				// A probe of the node on this host: whether it is up, not
				// who it is, so the certificate is not verified.
				scheme = "https"
				client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+"/readyz", nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("not healthy: %w", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("not ready: /readyz answered %d", resp.StatusCode)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", "address of the node's HTTP API [SESSIOND_HTTP_ADDR]")
	cmd.Flags().BoolVar(&useTLS, "https", false, "the API is served over TLS (--http-tls-cert)")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	return cmd
}

package node

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/node/password"
)

// BenchmarkValidate_IdleTimeout compares token validation with the idle timeout
// off and on. With it on every validation also records a use of the session for
// the batched SessionsTouched replication; docs/logins.md#idle-timeout wants
// that to cost no Raft write per validation, and the issue wants the two within
// 10%.
//
//	go test ./node -run XXX -bench Validate_IdleTimeout -count 5
func BenchmarkValidate_IdleTimeout(b *testing.B) {
	for _, idle := range []time.Duration{0, 30 * time.Minute} {
		name := "off"
		if idle > 0 {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			cfg := testConfig(b, b.TempDir())
			n := startNode(b, cfg)
			defer n.Close()
			p := fsm.DefaultPolicy()
			p.IdleTimeout = idle
			if _, err := n.SetPolicy(ctx(b), p); err != nil {
				b.Fatal(err)
			}
			const sessions = 10000
			tokens := make([]string, sessions)
			for i := range tokens {
				is, err := n.CreateSession(ctx(b), CreateRequest{UserID: events.UserID("u" + string(rune('a'+i%26))), App: "default", AuthMethod: events.AuthImpersonation})
				if err != nil {
					b.Fatal(err)
				}
				tokens[i] = is.AccessToken
			}
			var failures atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(rand.Uint64(), 1))
				for pb.Next() {
					if _, err := n.Validate(context.Background(), tokens[r.IntN(sessions)]); err != nil {
						failures.Add(1)
					}
				}
			})
			b.StopTimer()
			if failures.Load() > 0 {
				b.Fatalf("%d validations failed", failures.Load())
			}
		})
	}
}

// BenchmarkLogin measures password logins on one node with the production
// argon2id parameters: the hashing bounds it.
//
//	go test ./node -run XXX -bench Login -benchtime 200x
func BenchmarkLogin(b *testing.B) {
	cfg := testConfig(b, b.TempDir())
	cfg.Passwords = password.NewHasher(password.DefaultParams, 0)
	n := startNode(b, cfg)
	defer n.Close()
	if _, _, err := n.SetUser(ctx(b), SetUserRequest{UserID: "alice", Email: "alice@example.com", Password: "correct horse battery"}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(password.DefaultParams.Memory), "argon2-KiB")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := n.Login(ctx(b), LoginRequest{Email: "alice@example.com", Password: "correct horse battery",
				Session: CreateRequest{App: "default"}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

package client_test

// Round trips against a real node: every client call, decoded from the
// server's real answers.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/httpapi/client"
	"github.com/sessiond/sessiond/transport/testkit"
)

func realNode(t *testing.T) *client.Client {
	t.Helper()
	addr, stop, err := startNode(testkit.Logger(t, slog.LevelWarn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	c, err := client.New([]string{addr}, client.WithAPIKey(nodeAPIKey), client.WithRetry(2, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// must(call())(t) is call's value; an error fails the test.
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestRoundTrip_RealNode(t *testing.T) {
	t.Parallel()
	c := realNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("health", func(t *testing.T) {
		if h := must(c.Healthz(ctx))(t); h.Status != "ok" {
			t.Errorf("healthz %+v", h)
		}
		if h := must(c.Readyz(ctx))(t); h.Status != "ready" || h.Index == 0 {
			t.Errorf("readyz %+v", h)
		}
	})

	t.Run("session lifecycle", func(t *testing.T) {
		tok := must(c.CreateSession(ctx, client.CreateSessionRequest{
			UserID: "alice@example.com", App: "web", Scopes: []string{"read", "write"},
			Attributes: map[string]string{"role": "admin"}, Device: &client.Device{Label: "laptop"},
		}))(t)
		if tok.TokenType != "Bearer" || tok.ExpiresIn < 890 || tok.ExpiresIn > 900 || tok.Index == 0 ||
			!strings.HasPrefix(tok.AccessToken, "sa_") || !strings.HasPrefix(tok.RefreshToken, "sr_") {
			t.Fatalf("tokens %+v", tok)
		}
		if c.LastIndex() < tok.Index {
			t.Errorf("LastIndex %d below the write's %d", c.LastIndex(), tok.Index)
		}
		if d := time.Until(tok.AccessExpiresAt); d < 14*time.Minute || d > 16*time.Minute {
			t.Errorf("access expires in %s", d)
		}

		s := must(c.Validate(ctx, tok.AccessToken))(t)
		if s.SessionID != tok.SessionID || s.UserID != "alice@example.com" || s.App != "web" || s.Status != client.StatusActive ||
			s.AuthMethod != "impersonation" || s.Attributes["role"] != "admin" || s.Device.Label != "laptop" || len(s.Scopes) != 2 {
			t.Errorf("validated %+v", s)
		}
		auth := must(c.AuthCheck(ctx, tok.AccessToken))(t)
		if auth.SessionID != tok.SessionID || auth.UserID != "alice@example.com" || strings.Join(auth.Scopes, " ") != "read write" || auth.ExpiresAt.IsZero() {
			t.Errorf("auth %+v", auth)
		}
		in := must(c.Introspect(ctx, tok.AccessToken))(t)
		if !in.Active || in.TokenType != "access_token" || in.Sub != "alice@example.com" || in.SID != tok.SessionID ||
			in.ClientID != "web" || in.Scope != "read write" || in.ExpiresAt.Before(time.Now()) {
			t.Errorf("introspection %+v", in)
		}

		next := must(c.Refresh(ctx, tok.RefreshToken))(t)
		if next.SessionID != tok.SessionID || next.AccessToken == tok.AccessToken {
			t.Errorf("refreshed %+v", next)
		}
		if _, err := c.Validate(ctx, tok.AccessToken); !client.IsUnauthenticated(err) {
			t.Errorf("old access token after refresh: %v", err)
		}
		if old := must(c.Introspect(ctx, tok.RefreshToken))(t); old.Active {
			t.Errorf("rotated refresh token still active: %+v", old)
		}

		// An access token revoked alone: the session still refreshes.
		must(c.RevokeToken(ctx, next.AccessToken))(t)
		if _, err := c.Validate(ctx, next.AccessToken); !client.IsUnauthenticated(err) {
			t.Errorf("revoked access token: %v", err)
		}
		third := must(c.Refresh(ctx, next.RefreshToken))(t)

		list := must(c.UserSessions(ctx, "alice@example.com"))(t)
		if len(list) != 1 || list[0].SessionID != tok.SessionID {
			t.Errorf("user sessions %+v", list)
		}

		must(c.RevokeRefresh(ctx, tok.SessionID))(t)
		if _, err := c.Refresh(ctx, third.RefreshToken); !client.IsUnauthenticated(err) {
			t.Errorf("refresh after its revocation: %v", err)
		}
		must(c.RevokeSession(ctx, tok.SessionID))(t)
		got := must(c.Session(ctx, tok.SessionID))(t)
		if got.Status != client.StatusRevoked || got.RevokedAt == nil || got.RevokeReason == "" {
			t.Errorf("revoked session %+v", got)
		}
		if _, err := c.Session(ctx, "no-such-session"); !client.IsNotFound(err) {
			t.Errorf("unknown session: %v", err)
		}
		if list := must(c.UserSessions(ctx, "alice@example.com"))(t); len(list) != 0 {
			t.Errorf("sessions after revoke %+v", list)
		}

		other := must(c.CreateSession(ctx, client.CreateSessionRequest{UserID: "alice@example.com"}))(t)
		must(c.Logout(ctx, other.AccessToken))(t)
		if _, err := c.Validate(ctx, other.AccessToken); !client.IsUnauthenticated(err) {
			t.Errorf("after logout: %v", err)
		}
		if _, err := c.Logout(ctx, other.AccessToken); !client.IsUnauthenticated(err) {
			t.Errorf("second logout: %v", err)
		}
	})

	t.Run("force logout and bulk revoke", func(t *testing.T) {
		var ids []string
		for _, app := range []string{"web", "mobile", "mobile"} {
			ids = append(ids, must(c.CreateSession(ctx, client.CreateSessionRequest{UserID: "bob", App: app}))(t).SessionID)
		}
		r := must(c.BulkRevoke(ctx, client.BulkRevokeRequest{Apps: []string{"mobile"}}))(t)
		if r.Revoked != 2 || r.Index == 0 {
			t.Errorf("bulk revoke %+v", r)
		}
		keep := must(c.CreateSession(ctx, client.CreateSessionRequest{UserID: "bob"}))(t)
		r = must(c.ForceLogout(ctx, "bob", client.ForceLogoutRequest{Reason: client.ReasonAdmin, Except: keep.SessionID}))(t)
		if r.Revoked != 1 {
			t.Errorf("force logout %+v", r)
		}
		list := must(c.UserSessions(ctx, "bob"))(t)
		if len(list) != 1 || list[0].SessionID != keep.SessionID {
			t.Errorf("bob's sessions %+v (web session %s)", list, ids[0])
		}
		if _, err := c.ForceLogout(ctx, "bob", client.ForceLogoutRequest{Reason: "bored"}); !client.IsBadRequest(err) {
			t.Errorf("bad reason: %v", err)
		}
		r = must(c.BulkRevoke(ctx, client.BulkRevokeRequest{CreatedBefore: time.Now().Add(-time.Hour)}))(t)
		if r.Revoked != 0 {
			t.Errorf("nothing was created an hour ago, revoked %d", r.Revoked)
		}
	})

	t.Run("users, logins, limits and lockout", func(t *testing.T) {
		ch := must(c.SetUser(ctx, "carol", client.SetUserRequest{Email: "Carol@example.com", Password: "correct horse"}))(t)
		if ch.UserID != "carol" || ch.Index == 0 {
			t.Errorf("set user %+v", ch)
		}
		u := must(c.User(ctx, "carol"))(t)
		if !u.HasPassword || !strings.EqualFold(u.Email, "carol@example.com") || u.MaxSessions != nil || u.LockedUntil != nil || u.CreatedAt.IsZero() {
			t.Errorf("user %+v", u)
		}
		if _, err := c.SetUser(ctx, "dave", client.SetUserRequest{Email: "carol@example.com", Password: "another pw"}); !client.IsConflict(err) {
			t.Errorf("email taken: %v", err)
		}
		first := must(c.Login(ctx, client.LoginRequest{Email: "carol@example.com", Password: "correct horse", App: "web"}))(t)
		if first.UserID != "carol" {
			t.Errorf("login %+v", first)
		}
		if _, err := c.Login(ctx, client.LoginRequest{UserID: "carol", Password: "wrong horse"}); !client.IsUnauthenticated(err) {
			t.Errorf("bad password: %v", err)
		}

		one := 1
		lim := must(c.SetUserLimit(ctx, "carol", &one))(t)
		if lim.MaxSessions == nil || *lim.MaxSessions != 1 {
			t.Errorf("limit %+v", lim)
		}
		_, err := c.Login(ctx, client.LoginRequest{UserID: "carol", Password: "correct horse"})
		e, ok := client.AsError(err)
		if !client.IsSessionLimit(err) || !ok || len(e.Sessions) != 1 || e.Sessions[0].SessionID != first.SessionID {
			t.Fatalf("over the limit: %v %+v", err, e)
		}
		second := must(c.Login(ctx, client.LoginRequest{UserID: "carol", Password: "correct horse", EndSessions: []string{first.SessionID}}))(t)
		if s := must(c.Session(ctx, first.SessionID))(t); s.Status != client.StatusRevoked {
			t.Errorf("ended session %+v", s)
		}
		must(c.SetUserLimit(ctx, "carol", nil))(t)
		if u := must(c.User(ctx, "carol"))(t); u.MaxSessions != nil {
			t.Errorf("limit not cleared: %+v", u)
		}

		pw := must(c.SetPassword(ctx, "carol", "battery staple", client.PasswordReset))(t)
		if pw.Revoked != 1 {
			t.Errorf("password reset revoked %d", pw.Revoked)
		}
		if _, err := c.Validate(ctx, second.AccessToken); !client.IsUnauthenticated(err) {
			t.Errorf("session after password reset: %v", err)
		}

		p := must(c.Policy(ctx))(t)
		saved := *p
		p.Lockout.MaxFailures = 2
		must(c.SetPolicy(ctx, *p))(t)
		for range 2 {
			if _, err := c.Login(ctx, client.LoginRequest{UserID: "carol", Password: "wrong pw!"}); !client.IsUnauthenticated(err) {
				t.Fatalf("failed login: %v", err)
			}
		}
		_, err = c.Login(ctx, client.LoginRequest{UserID: "carol", Password: "battery staple"})
		if !client.IsLocked(err) || client.RetryAfter(err) <= 0 {
			t.Fatalf("locked login: %v (retry after %s)", err, client.RetryAfter(err))
		}
		if u := must(c.User(ctx, "carol"))(t); u.LockedUntil == nil || !u.LockedUntil.After(time.Now()) {
			t.Errorf("locked user %+v", u)
		}
		must(c.Unlock(ctx, "carol"))(t)
		must(c.Login(ctx, client.LoginRequest{UserID: "carol", Password: "battery staple"}))(t)
		must(c.SetPolicy(ctx, saved))(t)

		del := must(c.DeleteUser(ctx, "carol"))(t)
		if del.Revoked != 1 {
			t.Errorf("delete revoked %d", del.Revoked)
		}
		if _, err := c.User(ctx, "carol"); !client.IsNotFound(err) {
			t.Errorf("deleted user: %v", err)
		}
		if _, err := c.DeleteUser(ctx, "carol"); !client.IsNotFound(err) {
			t.Errorf("second delete: %v", err)
		}
	})

	t.Run("policy", func(t *testing.T) {
		p := must(c.Policy(ctx))(t)
		if p.AccessTTL != 15*time.Minute || !p.RefreshTTLFollowsAccess || p.RefreshTTL != 22*time.Minute+30*time.Second || p.OnSessionLimit != client.OnLimitDeny {
			t.Fatalf("default policy %+v", p)
		}
		want := *p
		want.AccessTTL = 30 * time.Minute
		want.AppMaxSessions = map[string]int{"web": 3}
		want.IdleTimeout = time.Hour
		set := must(c.SetPolicy(ctx, want))(t)
		if set.Index == 0 || set.RefreshTTL != 45*time.Minute || set.AppMaxSessions["web"] != 3 {
			t.Errorf("set policy answered %+v", set)
		}
		got := must(c.Policy(ctx))(t)
		set.Index = 0
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(set)
		if string(a) != string(b) {
			t.Errorf("GET after PUT\n%s\nPUT answered\n%s", a, b)
		}
		fixed := *got
		fixed.RefreshTTLFollowsAccess, fixed.RefreshTTL = false, 2*time.Hour
		if got := must(c.SetPolicy(ctx, fixed))(t); got.RefreshTTLFollowsAccess || got.RefreshTTL != 2*time.Hour {
			t.Errorf("explicit refresh ttl %+v", got)
		}
		bad := *got
		bad.AccessTTL = time.Second
		if _, err := c.SetPolicy(ctx, bad); !client.IsBadRequest(err) {
			t.Errorf("access ttl of 1s: %v", err)
		}
		must(c.SetPolicy(ctx, *p))(t)
	})

	t.Run("cluster", func(t *testing.T) {
		st := must(c.Cluster(ctx))(t)
		if st.NodeID != "n1" || st.Leader.ID != "n1" || st.RaftState != "Leader" || st.AppliedIndex == 0 || len(st.Members) != 1 || !st.Members[0].Leader {
			t.Errorf("cluster %+v", st)
		}
		if err := c.RemoveMember(ctx, "nope"); !client.IsNotFound(err) {
			t.Errorf("remove unknown member: %v", err)
		}
	})

	t.Run("self-service", func(t *testing.T) {
		a := must(c.CreateSession(ctx, client.CreateSessionRequest{UserID: "erin", Device: &client.Device{Label: "phone"}}))(t)
		b := must(c.CreateSession(ctx, client.CreateSessionRequest{UserID: "erin"}))(t)
		cc := must(c.CreateSession(ctx, client.CreateSessionRequest{UserID: "erin"}))(t)
		stranger := must(c.CreateSession(ctx, client.CreateSessionRequest{UserID: "frank"}))(t)
		mine, err := c.MySessions(ctx, a.AccessToken)
		if client.IsNotFound(err) || errors.Is(err, client.ErrMethodNotAllowed) {
			t.Skipf("GET /v1/me/sessions is not served yet: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		current := 0
		for _, s := range mine {
			if s.Current {
				current++
				if s.SessionID != a.SessionID {
					t.Errorf("current session is %s, want %s", s.SessionID, a.SessionID)
				}
			}
		}
		if len(mine) != 3 || current != 1 {
			t.Errorf("my sessions %+v", mine)
		}
		if _, err := c.EndMySession(ctx, a.AccessToken, stranger.SessionID); !client.IsNotFound(err) {
			t.Errorf("ending another user's session: %v", err)
		}
		must(c.EndMySession(ctx, a.AccessToken, b.SessionID))(t)
		r := must(c.EndMyOtherSessions(ctx, a.AccessToken, false))(t)
		if r.Revoked != 1 {
			t.Errorf("sign out elsewhere revoked %d", r.Revoked)
		}
		if _, err := c.Validate(ctx, cc.AccessToken); !client.IsUnauthenticated(err) {
			t.Errorf("other session still valid: %v", err)
		}
		must(c.Validate(ctx, a.AccessToken))(t)
		r = must(c.EndMyOtherSessions(ctx, a.AccessToken, true))(t)
		if r.Revoked != 1 {
			t.Errorf("include_current revoked %d", r.Revoked)
		}
		if _, err := c.Validate(ctx, a.AccessToken); !client.IsUnauthenticated(err) {
			t.Errorf("own session after include_current: %v", err)
		}
	})

	t.Run("events", func(t *testing.T) {
		types := map[string]int{}
		var last uint64
		for ev, err := range c.Events(ctx, 0, false) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Index <= last {
				t.Fatalf("event %d after %d", ev.Index, last)
			}
			last = ev.Index
			types[ev.Type]++
			if ev.Time.IsZero() {
				t.Errorf("event without time %+v", ev)
			}
		}
		for _, typ := range []string{"SessionCreated", "SessionRefreshed", "SessionRevoked", "UserForceLoggedOut", "UserCredentialsSet", "LoginFailed", "UserUnlocked", "UserLimitSet", "UserDeleted", "PolicySet"} {
			if types[typ] == 0 {
				t.Errorf("no %s event in %v", typ, types)
			}
		}

		// Follow: an event made after the stream started arrives.
		fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
		defer fcancel()
		made := make(chan *client.Tokens, 1)
		go func() {
			tok, err := c.CreateSession(ctx, client.CreateSessionRequest{UserID: "grace"})
			if err != nil {
				t.Error(err)
			}
			made <- tok
		}()
		var followed client.Event
		for ev, err := range c.Events(fctx, last, true) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Index <= last {
				t.Fatalf("replayed event %d at or before %d", ev.Index, last)
			}
			if ev.Type == "SessionCreated" && ev.UserID == "grace" {
				followed = ev
				break
			}
		}
		if tok := <-made; tok == nil || tok.SessionID != followed.SessionID || tok.Index != followed.Index {
			t.Errorf("followed %+v, created %+v", followed, tok)
		}
	})
}

package client_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/httpapi/client"
)

// A session's life: create it, validate its access token, refresh it,
// revoke it. The examples run against a real single-node cluster started
// in-process; against a deployment, pass its nodes' addresses.
func Example() {
	addr, stop, err := startNode(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	c, err := client.New([]string{addr}, client.WithAPIKey(nodeAPIKey))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tokens, err := c.CreateSession(ctx, client.CreateSessionRequest{
		UserID: "alice", App: "web", Scopes: []string{"profile"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("created:", tokens.TokenType, tokens.ExpiresIn > 0)

	s, err := c.Validate(ctx, tokens.AccessToken)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("validated:", s.Status, s.UserID, s.App, s.Scopes)

	next, err := c.Refresh(ctx, tokens.RefreshToken)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = c.Validate(ctx, tokens.AccessToken)
	fmt.Println("old access token rejected:", client.IsUnauthenticated(err))
	if s, err = c.Validate(ctx, next.AccessToken); err == nil {
		fmt.Println("new access token:", s.Status)
	}

	if _, err := c.RevokeSession(ctx, next.SessionID); err != nil {
		fmt.Println(err)
		return
	}
	_, err = c.Validate(ctx, next.AccessToken)
	fmt.Println("after revoke rejected:", client.IsUnauthenticated(err))
	if s, err = c.Session(ctx, next.SessionID); err == nil {
		fmt.Println("session:", s.Status, s.RevokeReason)
	}
	// Output:
	// created: Bearer true
	// validated: active alice web [profile]
	// old access token rejected: true
	// new access token: active
	// after revoke rejected: true
	// session: revoked admin
}

// A login over the user's session limit answers session_limit_exceeded with
// the user's sessions; the login can end some of them in the same step.
func ExampleClient_Login() {
	addr, stop, err := startNode(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	c, err := client.New([]string{addr}, client.WithAPIKey(nodeAPIKey))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := c.SetUser(ctx, "bob", client.SetUserRequest{Email: "bob@example.com", Password: "correct horse"}); err != nil {
		fmt.Println(err)
		return
	}
	one := 1
	if _, err := c.SetUserLimit(ctx, "bob", &one); err != nil {
		fmt.Println(err)
		return
	}
	login := client.LoginRequest{Email: "bob@example.com", Password: "correct horse"}
	if _, err := c.Login(ctx, login); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("first login: ok")

	_, err = c.Login(ctx, login)
	fmt.Println("second login over the limit:", client.IsSessionLimit(err))
	e, _ := client.AsError(err)
	for _, s := range e.Sessions {
		login.EndSessions = append(login.EndSessions, s.SessionID)
	}
	if _, err := c.Login(ctx, login); err == nil {
		fmt.Println("login ending", len(login.EndSessions), "session: ok")
	}

	bad := client.LoginRequest{UserID: "bob", Password: "wrong horse"}
	_, err = c.Login(ctx, bad)
	fmt.Println("wrong password:", client.IsUnauthenticated(err))
	// Output:
	// first login: ok
	// second login over the limit: true
	// login ending 1 session: ok
	// wrong password: true
}

// Replaying the event stream: with follow false the loop ends once every
// event applied so far is delivered.
func ExampleClient_Events() {
	addr, stop, err := startNode(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	c, err := client.New([]string{addr}, client.WithAPIKey(nodeAPIKey))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tokens, err := c.CreateSession(ctx, client.CreateSessionRequest{UserID: "carol"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := c.ForceLogout(ctx, "carol", client.ForceLogoutRequest{Reason: client.ReasonAdmin}); err != nil {
		fmt.Println(err)
		return
	}
	for ev, err := range c.Events(ctx, 0, false) {
		if err != nil {
			fmt.Println(err)
			return
		}
		switch ev.Type {
		case "SessionCreated":
			fmt.Println(ev.Type, ev.UserID, "ours:", ev.SessionID == tokens.SessionID)
		default:
			fmt.Println(ev.Type, ev.UserID, "reason:", ev.Reason, "revoked:", ev.Count)
		}
	}
	// Output:
	// SessionCreated carol ours: true
	// UserForceLoggedOut carol reason: admin revoked: 1
}

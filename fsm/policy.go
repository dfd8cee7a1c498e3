package fsm

import "github.com/sessiond/sessiond/events"

// The policy types live in events (PolicySet carries them); the state
// machine uses them under these names.
type (
	Policy   = events.Policy
	AppLimit = events.AppLimit
	Lockout  = events.Lockout
)

// DefaultPolicy is the documented defaults (docs/logins.md#policy-settings).
func DefaultPolicy() Policy { return events.DefaultPolicy() }

package client

import "time"

// SetEventsIdle changes how long an event stream may stay silent, for
// tests; the returned function restores it.
func SetEventsIdle(d time.Duration) (restore func()) {
	old := eventsIdle
	eventsIdle = d
	return func() { eventsIdle = old }
}

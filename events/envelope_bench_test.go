package events

import "testing"

// benchCreated has the shape of a create from the API: ids, an app, a
// device, two token hashes.
func benchCreated() Envelope {
	return Envelope{Time: 1700000000000000000, RequestID: "01JC6Q8Z3W5M7K2N4P6R8T0V2X", Event: &SessionCreated{
		SessionID: "s_01JC6Q8Z3W5M7K2N4P6R8T0V2X", UserID: "user-4711", App: "default", AuthMethod: AuthImpersonation,
		Device:      Device{UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", IP: "203.0.113.7"},
		AccessHash:  HashToken("sa_access"),
		RefreshHash: HashToken("sr_refresh"),
	}}
}

// BenchmarkEncode is one event's encoding: on the node that takes the
// write, and again on the leader after stamping.
func BenchmarkEncode(b *testing.B) {
	env := benchCreated()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode is one event's decoding, which every node does for every
// entry it applies.
func BenchmarkDecode(b *testing.B) {
	data, err := Encode(benchCreated())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

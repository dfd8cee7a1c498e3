package client_test

// Read-your-writes across Raft groups: the client remembers the highest
// index of each group an answer named, and sends them all back.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/httpapi/client"
)

// indexServer answers policy reads and session revocations, each with the
// next X-Sessiond-Index of its script (the last one once the script is
// spent), and records the X-Sessiond-Min-Index of every request.
type indexServer struct {
	mu     sync.Mutex
	script []string
	sent   []string
}

func (s *indexServer) handler(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.sent = append(s.sent, r.Header.Get("X-Sessiond-Min-Index"))
	if len(s.script) > 0 {
		w.Header().Set("X-Sessiond-Index", s.script[0])
		if len(s.script) > 1 {
			s.script = s.script[1:]
		}
	}
	s.mu.Unlock()
	if r.Method == http.MethodDelete {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, policyJSON)
}

// minIndexes is the X-Sessiond-Min-Index each request carried, in order.
func (s *indexServer) minIndexes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sent...)
}

// reads makes n policy reads and returns the min indexes the server saw.
func reads(t *testing.T, s *indexServer, c *client.Client, n int) []string {
	t.Helper()
	for range n {
		if _, err := c.Policy(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return s.minIndexes()
}

func TestReadYourWrites_RemembersTheHighestIndexOfEachGroup(t *testing.T) {
	t.Parallel()
	s := &indexServer{script: []string{"eu:5", "us:7", "eu:3", "eu:3"}}
	f := newFake(t, s.handler)
	c := newClient(t, []string{f.URL})
	got := reads(t, s, c, 4)
	want := []string{"", "eu:5", "eu:5,us:7", "eu:5,us:7"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("min indexes sent %q, want %q", got, want)
	}
	if l := c.LastIndexes(); l.String() != "eu:5,us:7" || len(l) != 2 || l[0] != (client.Index{Group: "eu", N: 5}) {
		t.Errorf("LastIndexes %#v", l)
	}
	if c.LastIndex() != 0 {
		t.Errorf("LastIndex %d with only group-qualified indexes, want 0", c.LastIndex())
	}
}

func TestReadYourWrites_GroupsAreSentSortedByName(t *testing.T) {
	t.Parallel()
	s := &indexServer{script: []string{"us:99", "global:17", "eu:1234"}}
	f := newFake(t, s.handler)
	c := newClient(t, []string{f.URL})
	if got := reads(t, s, c, 4); got[3] != "eu:1234,global:17,us:99" {
		t.Errorf("sent %q, want eu:1234,global:17,us:99", got[3])
	}
}

func TestReadYourWrites_SingleRegionHeaderIsAPlainNumber(t *testing.T) {
	t.Parallel()
	s := &indexServer{script: []string{"42", "40", "1234"}}
	f := newFake(t, s.handler)
	c := newClient(t, []string{f.URL})
	got := reads(t, s, c, 4)
	if want := []string{"", "42", "42", "1234"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("min indexes sent %q, want %q", got, want)
	}
	// Byte-identical to the value before regions: no group, no separator.
	if v := f.request(3).Header.Values("X-Sessiond-Min-Index"); len(v) != 1 || v[0] != "1234" {
		t.Errorf("header values %q", v)
	}
	if c.LastIndex() != 1234 || c.LastIndexes().String() != "1234" {
		t.Errorf("LastIndex %d, LastIndexes %q", c.LastIndex(), c.LastIndexes())
	}
}

func TestReadYourWrites_MalformedIndexesAreIgnored(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"abc", "-1", "+7", "0x10", "18446744073709551616", "eu:", ":5", "eu:x", "eu:-1",
		"eu:5:6", "e u:5", "eu;5", "eu:5,", ",eu:5", "eu:5,eu:6", "eu:5,us:x",
		strings.Repeat("g", 65) + ":5",
	} {
		t.Run(bad, func(t *testing.T) {
			t.Parallel()
			s := &indexServer{script: []string{"us:2", bad, "us:2"}}
			f := newFake(t, s.handler)
			c := newClient(t, []string{f.URL})
			if got := reads(t, s, c, 3); got[2] != "us:2" {
				t.Errorf("after X-Sessiond-Index %q the client sent %q, want us:2", bad, got[2])
			}
		})
	}
}

func TestReadYourWrites_APlainIndexIsNotSentOnceGroupsAreNamed(t *testing.T) {
	t.Parallel()
	// A list in one answer is taken whole. A cluster that names groups
	// refuses plain numbers: the plain index is remembered (LastIndex) but
	// sent only while no group is named.
	s := &indexServer{script: []string{"12", " eu:4 , global:9", "global:8", "13"}}
	f := newFake(t, s.handler)
	c := newClient(t, []string{f.URL})
	got := reads(t, s, c, 5)
	if want := []string{"", "12", "eu:4,global:9", "eu:4,global:9", "eu:4,global:9"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("min indexes sent %q, want %q", got, want)
	}
	if c.LastIndex() != 13 || c.LastIndexes().String() != "eu:4,global:9" {
		t.Errorf("LastIndex %d, LastIndexes %q; want 13 and eu:4,global:9", c.LastIndex(), c.LastIndexes())
	}
}

func TestReadYourWrites_WritesReturnTheNumberOfTheirGroup(t *testing.T) {
	t.Parallel()
	s := &indexServer{script: []string{"eu:50"}}
	f := newFake(t, s.handler)
	c := newClient(t, []string{f.URL})
	idx, err := c.RevokeSession(context.Background(), "s1.eu")
	if err != nil || idx != 50 {
		t.Fatalf("revoke: index %d, err %v; want 50", idx, err)
	}
	if got := reads(t, s, c, 1); got[0] != "" || got[1] != "eu:50" {
		t.Errorf("sent %q: the write sends none, the read after it eu:50", got)
	}
}

func TestWithMinIndexes_SeedsEveryGroup(t *testing.T) {
	t.Parallel()
	s := &indexServer{}
	f := newFake(t, s.handler)
	for _, tc := range []struct {
		opts []client.Option
		want string
	}{
		{[]client.Option{client.WithMinIndexes("us:5, eu:12")}, "eu:12,us:5"},
		{[]client.Option{client.WithMinIndexes("77")}, "77"},
		{[]client.Option{client.WithMinIndex(3)}, "3"},
		{[]client.Option{client.WithMinIndex(3), client.WithMinIndexes("eu:2")}, "eu:2"},
		{[]client.Option{client.WithMinIndexes("eu:9"), client.WithMinIndexes("eu:4,global:1")}, "eu:9,global:1"},
		{[]client.Option{client.WithMinIndexes(""), client.WithMinIndex(0)}, ""},
		{[]client.Option{client.WithMinIndexes("eu:0")}, ""},
	} {
		c := newClient(t, []string{f.URL}, tc.opts...)
		got := reads(t, s, c, 1)
		if sent := got[len(got)-1]; sent != tc.want {
			t.Errorf("seeded client sent %q, want %q", sent, tc.want)
		}
	}
	c := newClient(t, []string{f.URL}, client.WithMinIndexes("eu:12,us:5"), client.WithReadYourWrites(false))
	if got := reads(t, s, c, 1); got[len(got)-1] != "" {
		t.Errorf("read-your-writes off still sent %q", got[len(got)-1])
	}
}

func TestWithMinIndexes_BadListFailsNew(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"eu:x", "eu:1,eu:2", ":1", "eu:1,,us:2", "1,2"} {
		_, err := client.New([]string{"127.0.0.1:1"}, client.WithMinIndexes(bad))
		if !errors.Is(err, client.ErrBadIndex) {
			t.Errorf("WithMinIndexes(%q): New returned %v, want ErrBadIndex", bad, err)
		}
	}
}

func TestParseIndexes_ReadsWhatStringWrites(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want client.Indexes
	}{
		{"1234", client.Indexes{{N: 1234}}},
		{"0", client.Indexes{{N: 0}}},
		{"eu:1234", client.Indexes{{Group: "eu", N: 1234}}},
		{"eu:1234,us:99,global:17", client.Indexes{{"eu", 1234}, {"us", 99}, {"global", 17}}},
		{"ap-south.2:18446744073709551615", client.Indexes{{"ap-south.2", 18446744073709551615}}},
	} {
		got, err := client.ParseIndexes(tc.in)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ParseIndexes(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		if got.String() != tc.in {
			t.Errorf("%q reads back as %q", tc.in, got.String())
		}
	}
	if s := (client.Indexes{}).String(); s != "" {
		t.Errorf("empty list prints %q", s)
	}
	if s := (client.Index{Group: "eu", N: 7}).String() + "|" + (client.Index{N: 7}).String(); s != "eu:7|7" {
		t.Errorf("Index.String: %q", s)
	}
	for _, bad := range []string{"", " ", "x", "eu:", "eu:1,", "eu:1,eu:1"} {
		if _, err := client.ParseIndexes(bad); !errors.Is(err, client.ErrBadIndex) {
			t.Errorf("ParseIndexes(%q): %v, want ErrBadIndex", bad, err)
		}
	}
}

func TestEvents_RememberTheGroupOfTheStream(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Sessiond-Index", "eu:3")
		w.WriteHeader(http.StatusOK)
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "id: %d\nevent: SessionCreated\ndata: {\"index\":%d,\"type\":\"SessionCreated\"}\n\n", i, i)
		}
	})
	c := newClient(t, []string{f.URL})
	var ids []uint64
	for ev, err := range c.Events(context.Background(), 0, false) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.Index)
	}
	if fmt.Sprint(ids) != "[1 2 3]" {
		t.Errorf("events %v", ids)
	}
	if c.LastIndexes().String() != "eu:3" || c.LastIndex() != 0 {
		t.Errorf("after eu's events: LastIndexes %q, LastIndex %d; want eu:3 and 0", c.LastIndexes(), c.LastIndex())
	}
}

func TestTypes_DecodeRegionsAndGroups(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/users/alice":
			writeJSON(w, 200, `{"user_id":"alice","has_password":true,"max_sessions":null,"locked_until":null,`+
				`"created_at":"2025-01-01T00:00:00Z","updated_at":"2025-01-01T00:00:00Z","region":"us"}`)
		case "/v1/cluster":
			writeJSON(w, 200, `{"node_id":"n1","region":"eu","leader":{"id":"n1","raft_addr":"a:1"},"raft_state":"Leader",`+
				`"term":2,"applied_index":10,"commit_index":10,"last_contact_ms":0,"members":[],"groups":[`+
				`{"name":"eu","leader":{"id":"n1","raft_addr":"a:1"},"raft_state":"Leader","term":2,"applied_index":10,"commit_index":10,"last_contact_ms":0,"fresh":true,"voters":["n1"],"replicas":["n2"]},`+
				`{"name":"us","leader":{"id":"n2","raft_addr":"b:1"},"raft_state":"Follower","term":3,"applied_index":7,"commit_index":8,"last_contact_ms":-1,"fresh":false,"voters":["n2"],"replicas":["n1"]}]}`)
		}
	})
	c := newClient(t, []string{f.URL})
	u, err := c.User(context.Background(), "alice")
	if err != nil || u.Region != "us" {
		t.Fatalf("user %+v, %v", u, err)
	}
	st, err := c.Cluster(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Groups) != 2 {
		t.Fatalf("groups %+v", st.Groups)
	}
	us := st.Groups[1]
	if us.Name != "us" || us.Leader.ID != "n2" || us.RaftState != "Follower" || us.AppliedIndex != 7 || us.CommitIndex != 8 ||
		us.Fresh || us.LastContact() >= 0 || strings.Join(us.Voters, ",") != "n2" || strings.Join(us.Replicas, ",") != "n1" {
		t.Errorf("group us %+v", us)
	}
}

func TestTypes_SetUserSendsRegionOnlyWhenGiven(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Sessiond-Index", "global:"+strconv.Itoa(9))
		writeJSON(w, 200, `{"user_id":"alice","revoked":0,"index":9}`)
	})
	c := newClient(t, []string{f.URL})
	ctx := context.Background()
	if _, err := c.SetUser(ctx, "alice", client.SetUserRequest{Region: "us"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetUser(ctx, "alice", client.SetUserRequest{Email: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	bodies := append([]string(nil), f.bodies...)
	f.mu.Unlock()
	if bodies[0] != `{"region":"us"}` || bodies[1] != `{"email":"a@example.com"}` {
		t.Errorf("bodies %q", bodies)
	}
	if c.LastIndexes().String() != "global:9" {
		t.Errorf("LastIndexes %q", c.LastIndexes())
	}
}

package node

import (
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
)

func TestPickGlobalVoters_SpreadOverRegionsAndKeepCurrentOnes(t *testing.T) {
	m := func(id, region string) Member { return Member{ID: id, Region: region, Voter: true, Status: "alive"} }
	ids := func(ms []Member) string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return strings.Join(out, ",")
	}
	twoRegions := []Member{m("a1", "eu"), m("a2", "eu"), m("a3", "eu"), m("b1", "us"), m("b2", "us"), m("b3", "us")}
	if got := ids(pickGlobalVoters(twoRegions, nil)); got != "a1,a2,a3,b1,b2" {
		t.Errorf("two regions of three: %s, want three of eu (first by name) and two of us", got)
	}
	three := append(slices.Clone(twoRegions), m("c1", "ap"), m("c2", "ap"))
	if got := ids(pickGlobalVoters(three, nil)); got != "a1,a2,b1,c1,c2" {
		t.Errorf("three regions: %s, want two, two and one", got)
	}
	// Current voters stay, even one no longer a candidate (dead); the rest
	// fill up from the regions with fewest.
	current := []Member{m("a3", "eu"), {ID: "gone", Region: "eu"}}
	if got := ids(pickGlobalVoters(twoRegions, current)); got != "a1,a3,b1,b2,gone" {
		t.Errorf("with current voters a3 and a dead one: %s", got)
	}
	if got := ids(pickGlobalVoters(twoRegions[:1], nil)); got != "a1" {
		t.Errorf("one candidate: %s", got)
	}
}

func TestIndex_StringAndParse(t *testing.T) {
	for _, tc := range []struct {
		in   Index
		text string
	}{
		{Index{N: 1234}, "1234"},
		{Index{Group: "eu", N: 7}, "eu:7"},
		{Index{Group: "global", N: 0}, "global:0"},
	} {
		if got := tc.in.String(); got != tc.text {
			t.Errorf("%+v.String() = %q, want %q", tc.in, got, tc.text)
		}
		back, err := ParseIndex(tc.text)
		if err != nil || back != tc.in {
			t.Errorf("ParseIndex(%q) = %+v, %v", tc.text, back, err)
		}
	}
	withDirectory := Index{Group: "us", N: 6, Directory: 17}
	if got := withDirectory.String(); got != "global:17,us:6" {
		t.Errorf("an index after a directory entry reads %q", got)
	}
	list, err := ParseIndexes("eu:5, us:7,12")
	if err != nil || len(list) != 3 || list[1] != (Index{Group: "us", N: 7}) || list[2] != (Index{N: 12}) {
		t.Errorf("ParseIndexes = %+v, %v", list, err)
	}
	for _, bad := range []string{"", ":5", "eu:", "eu:-1", "x", "eu:5,", "1e3"} {
		if _, err := ParseIndexes(bad); err == nil {
			t.Errorf("ParseIndexes(%q) accepted", bad)
		}
	}
}

func TestRegionTags_RouteTokensAndSessionIDs(t *testing.T) {
	n := &Node{cfg: Config{Regions: []string{"eu", "us"}, Region: "eu"}, groups: map[string]*raftGroup{}}
	for _, name := range []string{"eu", "us", globalGroup} {
		n.groups[name] = &raftGroup{name: name, fsm: fsm.New(fsm.Config{})}
	}
	n.global = n.groups[globalGroup]
	us := n.groups["us"]
	tok, _ := mintToken(AccessTokenPrefix, us.regionTag())
	if !strings.HasSuffix(tok, ".us") || !wellFormed(tok, AccessTokenPrefix) {
		t.Fatalf("token minted in us: %q", tok[len(tok)-6:])
	}
	if g := n.tokenGroup(tok, AccessTokenPrefix); g != us {
		t.Errorf("token of us routes to %v", g)
	}
	if g := n.tokenGroup(tok, RefreshTokenPrefix); g != nil {
		t.Errorf("an access token taken for a refresh token routes to %v", g.name)
	}
	untagged, _ := mintToken(AccessTokenPrefix, "")
	for _, bad := range []string{untagged, untagged + ".", untagged + ".mars", untagged + ".global", untagged + "xus"} {
		if g := n.tokenGroup(bad, AccessTokenPrefix); g != nil {
			t.Errorf("token …%q routes to %q, want no group", bad[40:], g.name)
		}
	}
	// A cluster that was single-region before: untagged tokens belong to
	// the region its data became.
	n.legacyHere = true
	if g := n.tokenGroup(untagged, AccessTokenPrefix); g != n.groups["eu"] {
		t.Errorf("an untagged token of a cluster upgraded into eu routes to %v", g)
	}
	n.legacyHere = false
	id := newSessionID(n.groups["eu"].regionTag())
	if g := n.groupOfSession(id); g != n.groups["eu"] {
		t.Errorf("session id %q routes to %v", id, g)
	}
	if g := n.groupOfSession(events.SessionID("short.eu")); g != nil {
		t.Errorf("a malformed session id routes to %q", g.name)
	}

	single := &Node{cfg: Config{Region: "default"}}
	single.raftGroup = &raftGroup{name: defaultGroup}
	if g := single.tokenGroup(untagged, AccessTokenPrefix); g != single.raftGroup {
		t.Errorf("single-region: an untagged token routes to %v", g)
	}
	if g := single.tokenGroup(tok, AccessTokenPrefix); g != nil {
		t.Errorf("single-region: a tagged token routes to %v", g)
	}
}

func TestSamePolicy_EmptyAppLimitsEqualNone(t *testing.T) {
	a, b := fsm.DefaultPolicy(), fsm.DefaultPolicy()
	b.AppMaxSessions = []events.AppLimit{}
	if !samePolicy(a, b) {
		t.Error("no app limits and an empty list differ")
	}
	b.AppMaxSessions = []events.AppLimit{{App: "web", MaxSessions: 2}}
	if samePolicy(a, b) {
		t.Error("an app limit went unnoticed")
	}
	b = fsm.DefaultPolicy()
	b.AccessTTL++
	if samePolicy(a, b) {
		t.Error("a changed access lifetime went unnoticed")
	}
}

// A data dir with region groups is refused by a node started without
// regions, instead of starting empty beside the data it cannot use. (A
// single-region data dir started with regions becomes a region's group:
// upgrade_regions_test.go.)
func TestRegions_DataDirWithGroupsNeedsRegions(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.BootstrapSelf = false
	cfg.BootstrapExpect = 1
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.Region, cfg.Regions = "eu", []string{"eu", "us"}
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("start a node with regions: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = New(testConfig(t, cfg.DataDir))
	if err == nil || !strings.Contains(err.Error(), "--regions") {
		t.Fatalf("a single-region node on a data dir with region groups: %v, want a refusal", err)
	}
}

func TestConfig_RegionsAreChecked(t *testing.T) {
	base := testConfig(t, t.TempDir())
	base.BootstrapSelf, base.BootstrapExpect, base.GossipAddr = false, 3, "127.0.0.1:0"
	for _, tc := range []struct {
		region  string
		regions []string
		want    string
	}{
		{"eu", []string{"eu", "us"}, ""},
		{"default", []string{"default"}, ""}, // one region: no groups
		{"ap", []string{"eu", "us"}, "not one of"},
		{"eu", []string{"eu", "eu"}, "twice"},
		{"eu", []string{"eu", "global"}, "global"},
		{"eu", []string{"eu", "US"}, "lower-case"},
	} {
		cfg := base
		cfg.Region, cfg.Regions = tc.region, tc.regions
		err := cfg.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("region %q of %v: %v, want %q", tc.region, tc.regions, err, tc.want)
		}
	}
	alone := base
	alone.Region, alone.Regions, alone.BootstrapSelf, alone.BootstrapExpect = "eu", []string{"eu", "us"}, true, 0
	if err := alone.Validate(); err == nil {
		t.Error("a node bootstrapping alone with regions was accepted")
	}
}

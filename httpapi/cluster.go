package httpapi

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/node"
)

type clusterJSON struct {
	NodeID        string       `json:"node_id"`
	Region        string       `json:"region"`
	Leader        leaderJSON   `json:"leader"`
	RaftState     string       `json:"raft_state"`
	Term          uint64       `json:"term"`
	AppliedIndex  uint64       `json:"applied_index"`
	CommitIndex   uint64       `json:"commit_index"`
	LastContactMS int64        `json:"last_contact_ms"`
	Members       []memberJSON `json:"members"`
	// Groups, in a cluster with regions, lists every Raft group: each
	// region's and the global one (the fields above are then this node's
	// own region's group).
	Groups []groupJSON `json:"groups,omitempty"`
	// DirectoryImport, in a cluster with regions that was a single-region
	// cluster before, says whether that cluster's users are all listed in
	// the directory yet.
	DirectoryImport *importJSON `json:"directory_import,omitempty"`
}

type importJSON struct {
	Region string `json:"region"`
	Done   bool   `json:"done"`
}

type groupJSON struct {
	Name          string     `json:"name"`
	Leader        leaderJSON `json:"leader"`
	RaftState     string     `json:"raft_state"`
	Term          uint64     `json:"term"`
	AppliedIndex  uint64     `json:"applied_index"`
	CommitIndex   uint64     `json:"commit_index"`
	LastContactMS int64      `json:"last_contact_ms"`
	Fresh         bool       `json:"fresh"`
	Voters        []string   `json:"voters"`
	Replicas      []string   `json:"replicas"`
}

type leaderJSON struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
}

type memberJSON struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Region   string `json:"region"`
	Voter    bool   `json:"voter"`
	InRaft   bool   `json:"in_raft"`
	Leader   bool   `json:"leader"`
	Status   string `json:"status"`
}

// GET /v1/cluster (admin): this node's view of the cluster.
func (s *Server) getCluster(c echo.Context) error {
	if err := s.readAt(c, groupScope("")); err != nil {
		return err
	}
	st := s.cluster.ClusterStatus()
	out := clusterJSON{
		NodeID: st.NodeID, Region: st.Region,
		Leader:    leaderJSON{ID: st.LeaderID, RaftAddr: st.LeaderAddr},
		RaftState: st.State, Term: st.Term, AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex,
		LastContactMS: lastContactMillis(st.LastContact),
		Members:       make([]memberJSON, 0, len(st.Members)),
	}
	for _, m := range st.Members {
		out.Members = append(out.Members, memberJSON{
			ID: m.ID, RaftAddr: m.RaftAddr, HTTPAddr: m.HTTPAddr, Region: m.Region,
			Voter: m.Voter, InRaft: m.InRaft, Leader: m.Leader, Status: m.Status,
		})
	}
	if st.ImportRegion != "" {
		out.DirectoryImport = &importJSON{Region: st.ImportRegion, Done: st.ImportDone}
	}
	for _, g := range st.Groups {
		out.Groups = append(out.Groups, groupJSON{
			Name: g.Name, Leader: leaderJSON{ID: g.LeaderID, RaftAddr: g.LeaderAddr},
			RaftState: g.State, Term: g.Term, AppliedIndex: g.AppliedIndex, CommitIndex: g.CommitIndex,
			LastContactMS: lastContactMillis(g.LastContact), Fresh: g.Fresh,
			Voters: nonNil(g.Voters), Replicas: nonNil(g.Replicas),
		})
	}
	return c.JSON(http.StatusOK, out)
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// DELETE /v1/cluster/members/:id (admin): remove a node from Raft.
func (s *Server) removeMember(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	ctx, cancel := s.writeContext(c)
	defer cancel()
	if err := s.cluster.RemoveMember(ctx, id); err != nil {
		if errors.Is(err, node.ErrUnknownMember) {
			return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: "no such member"}
		}
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// GET /healthz: the process is up and serving HTTP.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// GET /readyz: a leader is known and this node has caught up.
func (s *Server) readyz(c echo.Context) error {
	if !s.cluster.Ready() {
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "not ready: no leader known yet, or still catching up"}
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ready", "index": s.cluster.AppliedIndex()})
}

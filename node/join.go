package node

import "time"

// Joining the cluster's gossip through the seed list (Config.Join). A seed
// may not be up yet when this node starts, so the first join is retried
// with a backoff until one answers. Once joined, the seeds are joined again
// every 30 seconds even when other members are known: two sides of a healed
// partition that have declared each other dead do not find each other
// again through gossip alone, and a fresh join through a seed reconnects
// them.

// joinLoop joins the seed list until it succeeds, then re-joins it
// periodically so that a healed partition reconnects.
func (g *gossip) joinLoop() {
	defer g.n.wg.Done()
	if len(g.n.cfg.Join) == 0 {
		return
	}
	wait := 200 * time.Millisecond
	joined := false
	for {
		if !joined || g.aliveCount() < 2 {
			if count, err := g.ml.Join(g.n.cfg.Join); err != nil {
				g.n.log.Debug("join failed, retrying", "seeds", g.n.cfg.Join, "error", err)
			} else {
				if !joined {
					g.n.log.Info("joined the cluster's gossip", "contacted", count)
				}
				joined = true
			}
		}
		if joined {
			wait = 30 * time.Second
		} else {
			wait = min(2*wait, 5*time.Second)
		}
		select {
		case <-g.n.stop:
			return
		case <-time.After(wait):
		}
		if joined {
			// Re-join now and then even when members are known: after a
			// partition heals this is what reconnects the two sides.
			if _, err := g.ml.Join(g.n.cfg.Join); err != nil {
				g.n.log.Debug("periodic re-join failed", "error", err)
			}
		}
	}
}

// Command sessiond runs one sessiond node. With no flags it is a single-node
// cluster on 127.0.0.1 with its data in ./data. Every flag can also be set
// with a SESSIOND_* environment variable (--data-dir ↔ SESSIOND_DATA_DIR);
// a flag on the command line wins.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "sessiond:", err)
		os.Exit(1)
	}
}

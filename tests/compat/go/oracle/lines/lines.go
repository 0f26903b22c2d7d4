// Package lines is the batch protocol every oracle speaks: one JSON request a line on
// stdin, one JSON answer a line on stdout, so thousands of cases run in one process.
package lines

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

// Serve decodes each line into a Req, answers with handle's result, and exits 2 on a
// malformed request or an I/O error.
func Serve[Req any](handle func(Req) interface{}) {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<28)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req Req
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, "bad request:", err)
			os.Exit(2)
		}
		if err := enc.Encode(handle(req)); err != nil {
			fmt.Fprintln(os.Stderr, "cannot write:", err)
			os.Exit(2)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "cannot read:", err)
		out.Flush()
		os.Exit(2)
	}
}

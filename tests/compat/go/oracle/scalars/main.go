// Oracle for csiprovider/compat/go/duration.py and strconv.py: time.ParseDuration and
// strconv.ParseBool, which the providers use for their parameters.
//
// Input: one JSON object a line, {"op": "duration" | "bool", "in": base64 bytes}.
// Output: one JSON line each: {"ok": true, "ns": nanoseconds as text} (duration),
// {"ok": true, "bool": value} (bool), or {"ok": false, "err": base64 of the error text}.
package main

import (
	"strconv"
	"time"

	"../lines"
)

type request struct {
	Op string `json:"op"`
	In []byte `json:"in"`
}

type response struct {
	OK   bool   `json:"ok"`
	NS   string `json:"ns,omitempty"`
	Bool bool   `json:"bool"`
	Err  []byte `json:"err,omitempty"`
}

func handle(req request) response {
	switch req.Op {
	case "duration":
		d, err := time.ParseDuration(string(req.In))
		if err != nil {
			return response{Err: []byte(err.Error())}
		}
		return response{OK: true, NS: strconv.FormatInt(int64(d), 10)}
	case "bool":
		b, err := strconv.ParseBool(string(req.In))
		if err != nil {
			return response{Err: []byte(err.Error())}
		}
		return response{OK: true, Bool: b}
	}
	panic("unknown op " + req.Op)
}

func main() {
	lines.Serve(func(req request) interface{} { return handle(req) })
}

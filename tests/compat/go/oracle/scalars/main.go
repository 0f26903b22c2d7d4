// Oracle for csiprovider/compat/go/duration.py, strconv.py and regexp.py: time.ParseDuration
// and strconv.ParseBool, which the providers use for their parameters, and what sops does
// with a document: regexp.MatchString (encrypted_regex, unencrypted_regex against keys) and
// strconv.FormatFloat (float values in the MAC, in dotenv and ini output).
//
// Input: one JSON object a line,
//
//	{"op": "duration" | "bool", "in": base64 bytes}
//	{"op": "regexp", "pattern": base64 bytes, "in": base64 bytes (the subject)}
//	{"op": "formatfloat", "bits": the float64's IEEE 754 bits as decimal text,
//	 "fmt": one letter, "prec": int, "bitSize": 32 | 64}
//
// Output: one JSON line each: {"ok": true, "ns": nanoseconds as text} (duration),
// {"ok": true, "bool": value} (bool; regexp: whether it matched), {"ok": true, "text":
// FormatFloat's text} (formatfloat), or {"ok": false, "err": base64 of the error text}
// (for regexp: the compile error).
package main

import (
	"math"
	"regexp"
	"strconv"
	"time"

	"../lines"
)

type request struct {
	Op      string `json:"op"`
	In      []byte `json:"in"`
	Pattern []byte `json:"pattern"`
	Bits    string `json:"bits"`
	Fmt     string `json:"fmt"`
	Prec    int    `json:"prec"`
	BitSize int    `json:"bitSize"`
}

type response struct {
	OK   bool   `json:"ok"`
	NS   string `json:"ns,omitempty"`
	Bool bool   `json:"bool"`
	Text string `json:"text,omitempty"`
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
	case "regexp":
		matched, err := regexp.MatchString(string(req.Pattern), string(req.In))
		if err != nil {
			return response{Err: []byte(err.Error())}
		}
		return response{OK: true, Bool: matched}
	case "formatfloat":
		bits, err := strconv.ParseUint(req.Bits, 10, 64)
		if err != nil || len(req.Fmt) != 1 {
			panic("bad formatfloat request")
		}
		value := math.Float64frombits(bits)
		return response{OK: true, Text: strconv.FormatFloat(value, req.Fmt[0], req.Prec, req.BitSize)}
	}
	panic("unknown op " + req.Op)
}

func main() {
	lines.Serve(func(req request) interface{} { return handle(req) })
}

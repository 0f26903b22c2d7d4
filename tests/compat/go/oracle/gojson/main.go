// Oracle for csiprovider/compat/go/encoding_json.py: encoding/json as vault-csi-provider
// and the Vault client use it.
//
// Input: one JSON object a line, {"op": ..., "in": base64 bytes, "bits": uint64 as text}:
//   - "roundtrip": json.NewDecoder with UseNumber decodes `in` into interface{}, then
//     json.Marshal writes it back (what a whole secret's file holds);
//   - "string": json.Marshal(string(in)), `in` being any bytes (also invalid UTF-8);
//   - "float": json.Marshal(math.Float64frombits(bits));
//   - "number": json.Marshal(json.Number(in)).
//
// Output: one JSON line each: {"out": base64} or {"decodeErr": text} (roundtrip) or
// {"err": base64 of the error text}.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"../lines"
)

type request struct {
	Op   string `json:"op"`
	In   []byte `json:"in"`
	Bits string `json:"bits"`
}

type response struct {
	Out       []byte `json:"out,omitempty"`
	DecodeErr string `json:"decodeErr,omitempty"`
	Err       []byte `json:"err,omitempty"`
	Panic     string `json:"panic,omitempty"`
}

func marshal(v interface{}) response {
	out, err := json.Marshal(v)
	if err != nil {
		return response{Err: []byte(err.Error())}
	}
	if out == nil {
		out = []byte{}
	}
	return response{Out: out}
}

func handle(req request) (resp response) {
	defer func() {
		if r := recover(); r != nil {
			resp = response{Panic: fmt.Sprint(r)}
		}
	}()
	switch req.Op {
	case "roundtrip":
		dec := json.NewDecoder(bytes.NewReader(req.In))
		dec.UseNumber()
		var v interface{}
		if err := dec.Decode(&v); err != nil {
			return response{DecodeErr: err.Error()}
		}
		return marshal(v)
	case "string":
		return marshal(string(req.In))
	case "float":
		bits, err := strconv.ParseUint(req.Bits, 10, 64)
		if err != nil {
			panic(err)
		}
		return marshal(math.Float64frombits(bits))
	case "number":
		return marshal(json.Number(req.In))
	}
	panic("unknown op " + req.Op)
}

func main() {
	lines.Serve(func(req request) interface{} { return handle(req) })
}

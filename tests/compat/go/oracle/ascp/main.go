// Oracle for csiprovider/compat/go/sigs_yaml.py and csiprovider/stores/aws/objects.py:
// ASCP's `yaml.Unmarshal([]byte(objects), &descriptors)` with sigs.k8s.io/yaml
// (yaml.v2 → JSON → encoding/json) into []*provider.SecretDescriptor.
//
// Input: one JSON object a line, {"in": base64 of the YAML text}.
// Output: one JSON line each: {"ok": true, "descriptors": [null | {...}]} or
// {"ok": false, "err": base64 of the error text}.
package main

import (
	"fmt"

	"sigs.k8s.io/yaml"

	"./provider"

	"../lines"
)

type request struct {
	In []byte `json:"in"`
}

type jmes struct {
	Path           []byte `json:"path"`
	ObjectAlias    []byte `json:"objectAlias"`
	FilePermission []byte `json:"filePermission"`
}

type failover struct {
	ObjectName         []byte `json:"objectName"`
	ObjectVersion      []byte `json:"objectVersion"`
	ObjectVersionLabel []byte `json:"objectVersionLabel"`
}

type descriptor struct {
	ObjectName         []byte   `json:"objectName"`
	ObjectAlias        []byte   `json:"objectAlias"`
	ObjectVersion      []byte   `json:"objectVersion"`
	ObjectVersionLabel []byte   `json:"objectVersionLabel"`
	ObjectType         []byte   `json:"objectType"`
	FilePermission     []byte   `json:"filePermission"`
	JMESPath           []jmes   `json:"jmesPath"`
	FailoverObject     failover `json:"failoverObject"`
}

type response struct {
	OK          bool          `json:"ok"`
	Err         []byte        `json:"err,omitempty"`
	Panic       string        `json:"panic,omitempty"`
	Descriptors []*descriptor `json:"descriptors,omitempty"`
}

func decode(text []byte) (resp response) {
	defer func() {
		if r := recover(); r != nil {
			resp = response{Panic: fmt.Sprint(r)}
		}
	}()
	descriptors := make([]*provider.SecretDescriptor, 0)
	if err := yaml.Unmarshal(text, &descriptors); err != nil {
		return response{Err: []byte(err.Error())}
	}
	resp.OK = true
	resp.Descriptors = make([]*descriptor, 0, len(descriptors))
	for _, d := range descriptors {
		if d == nil {
			resp.Descriptors = append(resp.Descriptors, nil)
			continue
		}
		out := &descriptor{
			ObjectName:         []byte(d.ObjectName),
			ObjectAlias:        []byte(d.ObjectAlias),
			ObjectVersion:      []byte(d.ObjectVersion),
			ObjectVersionLabel: []byte(d.ObjectVersionLabel),
			ObjectType:         []byte(d.ObjectType),
			FilePermission:     []byte(d.FilePermission),
			JMESPath:           make([]jmes, 0, len(d.JMESPath)),
			FailoverObject: failover{
				ObjectName:         []byte(d.FailoverObject.ObjectName),
				ObjectVersion:      []byte(d.FailoverObject.ObjectVersion),
				ObjectVersionLabel: []byte(d.FailoverObject.ObjectVersionLabel),
			},
		}
		for _, j := range d.JMESPath {
			out.JMESPath = append(out.JMESPath, jmes{
				Path:           []byte(j.Path),
				ObjectAlias:    []byte(j.ObjectAlias),
				FilePermission: []byte(j.FilePermission),
			})
		}
		resp.Descriptors = append(resp.Descriptors, out)
	}
	return resp
}

func main() {
	lines.Serve(func(req request) interface{} { return decode(req.In) })
}

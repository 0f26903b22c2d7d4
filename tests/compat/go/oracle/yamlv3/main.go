// Oracle for csiprovider/compat/go/yaml_v3.py: gopkg.in/yaml.v3 decoding of
// vault-csi-provider's `objects` into []config.Secret, then encoding/json's Marshal of
// each secretArgs map (the request body vault-csi-provider sends).
//
// Input: one JSON object a line, {"in": base64 of the YAML text}.
// Output: one JSON line each, {"ok": true, "secrets": [...]} or {"ok": false, "err": ...}.
// Every Go string is written as []byte (base64), so invalid UTF-8 survives the trip.
package main

import (
	"encoding/json"
	"fmt"

	"gopkg.in/yaml.v3"

	"./config"

	"../lines"
)

type request struct {
	In []byte `json:"in"`
}

type body struct {
	JSON []byte `json:"json"`
	Err  []byte `json:"err"`
}

type secret struct {
	ObjectName     []byte `json:"objectName"`
	SecretPath     []byte `json:"secretPath"`
	SecretKey      []byte `json:"secretKey"`
	Method         []byte `json:"method"`
	Encoding       []byte `json:"encoding"`
	FilePermission uint32 `json:"filePermission"`
	SecretArgs     *body  `json:"secretArgs"`
}

type response struct {
	OK      bool     `json:"ok"`
	Err     []byte   `json:"err,omitempty"`
	Panic   string   `json:"panic,omitempty"`
	Secrets []secret `json:"secrets,omitempty"`
}

func decode(text []byte) (resp response) {
	defer func() {
		if r := recover(); r != nil {
			resp = response{Panic: fmt.Sprint(r)}
		}
	}()
	var secrets []config.Secret
	if err := yaml.Unmarshal(text, &secrets); err != nil {
		return response{Err: []byte(err.Error())}
	}
	resp.OK = true
	resp.Secrets = make([]secret, 0, len(secrets))
	for _, s := range secrets {
		out := secret{
			ObjectName:     []byte(s.ObjectName),
			SecretPath:     []byte(s.SecretPath),
			SecretKey:      []byte(s.SecretKey),
			Method:         []byte(s.Method),
			Encoding:       []byte(s.Encoding),
			FilePermission: uint32(s.FilePermission),
		}
		if s.SecretArgs != nil {
			encoded, err := json.Marshal(s.SecretArgs)
			if err != nil {
				out.SecretArgs = &body{Err: []byte(err.Error())}
			} else {
				out.SecretArgs = &body{JSON: encoded}
			}
		}
		resp.Secrets = append(resp.Secrets, out)
	}
	return resp
}

func main() {
	lines.Serve(func(req request) interface{} { return decode(req.In) })
}

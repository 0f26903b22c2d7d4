// Package config has the shape of vault-csi-provider's config.Secret, the type its
// `objects` parameter is decoded into (yaml.v3 names "[]config.Secret" and
// "config.Secret" in its type errors, so the package is called config too).
package config

import "os"

// Secret is one entry of `objects`: the field names, Go types and yaml tags are what
// vault-csi-provider declares.
type Secret struct {
	ObjectName     string                 `yaml:"objectName,omitempty"`
	SecretPath     string                 `yaml:"secretPath,omitempty"`
	SecretKey      string                 `yaml:"secretKey,omitempty"`
	Method         string                 `yaml:"method,omitempty"`
	SecretArgs     map[string]interface{} `yaml:"secretArgs,omitempty"`
	FilePermission os.FileMode            `yaml:"filePermission,omitempty"`
	Encoding       string                 `yaml:"encoding,omitempty"`
}

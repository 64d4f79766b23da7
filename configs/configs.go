// Package configs holds Easel's example configuration, embedded so that the
// binary and its tests can check it still loads.
package configs

import _ "embed"

// Example is configs/easel.example.yaml.
//
//go:embed easel.example.yaml
var Example []byte

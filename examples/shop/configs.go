package shop

import _ "embed"

// GatewayConfig is gateway.yaml: the shop's public API, as the gateway loads it (verity dev
// embeds it, so the binary needs no file beside it).
//
//go:embed gateway.yaml
var GatewayConfig []byte

// ViewsConfig is views.yaml: the shop's read models, as the consolidator loads it.
//
//go:embed views.yaml
var ViewsConfig []byte

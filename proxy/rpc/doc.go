// Package rpc is airlock's SanctumAI-compatible front door: the
// length-prefixed JSON-RPC protocol the public SanctumAI SDKs speak (see
// SANCTUM_PROTOCOL.md), served on the proxy port (connections whose first
// byte is 0x00) and on a Unix socket.
//
// # Wire
//
// Every message is a 4-byte big-endian length and that many bytes of JSON.
// Requests are {"id", "method", "params"}; answers are {"id", "result"} or
// {"id", "error": {code, message, detail, suggestion, docs_url, context}}.
// Requests on one connection are handled in order. A frame over
// [Options.MaxFrame] is answered INVALID_REQUEST and the connection closed
// (the frame boundary is lost); non-JSON or an unknown method is answered
// INVALID_REQUEST and the connection carries on.
//
// # Authorization
//
// Agents authenticate with an Ed25519 challenge against the public key in
// the vault's agents registry; sessions belong to the connection that made
// them and expire after [Options.SessionTTL]. Every credential action is
// deny-by-default through [policy.Policy.Allowed]; `use http_request` goes
// through the [Backend]'s egress pipeline, never around it.
//
// # Secrets
//
// Secret values appear only in the results of `retrieve` and `use
// http_header` (both need an explicit grant and are logged at warning
// level). Errors, audit lines and metrics carry names and codes only.
package rpc

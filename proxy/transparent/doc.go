// Package transparent is airlock's transparent door: a listener for TCP
// connections that a firewall redirected to airlock (nftables/iptables
// REDIRECT or DNAT, or TPROXY) instead of sending them through an explicit
// proxy.
//
// For each accepted connection the listener
//
//   - recovers the original destination: SO_ORIGINAL_DST (IPv4) or
//     IP6T_SO_ORIGINAL_DST (IPv6) for REDIRECT/DNAT, or the socket's local
//     address for TPROXY ([Config.TProxy]);
//   - peeks, without consuming, the first bytes: a TLS ClientHello yields
//     the SNI server name, a plain HTTP/1.x request its Host header. The
//     peek is bounded in size ([Config.MaxPeek]) and time
//     ([Config.PeekTimeout]);
//   - names the agent from configuration: [Config.Agent] (one listener per
//     agent) or the longest [Config.Sources] prefix that holds the client's
//     source address;
//   - hands a [*Conn] whose reads replay the peeked bytes to the [Handler].
//
// The handler runs the same pipeline a CONNECT would (identify, match, MITM
// and inject, tunnel, or deny); this package decides nothing about policy.
// It refuses, before the handler, connections it cannot attribute: no
// original destination, an original destination equal to the listener
// itself (a direct connection, which would loop), a source no mapping
// names, or a peek that times out.
//
// # Agent identity
//
// A redirected connection carries no Proxy-Authorization, so identity comes
// from where it arrives: give each agent its own listener (its own port in
// the redirect rule, Config.Agent set), or map source networks to agents
// (Config.Sources, e.g. one pod CIDR or one veth /30 per agent). A source no
// prefix holds gets Config.Agent; when that is empty the connection is
// refused and counted (result "unknown_source").
package transparent

// Package isolate runs a command in new Linux namespaces where airlock is
// the only way out (`airlock run --isolate`).
//
// # Root mode
//
// [Run] starts an init process (this binary re-executed; [MaybeInit] must
// be the first thing main or TestMain does) in new network, mount, PID,
// UTS and IPC namespaces, and then, from the host side:
//
//   - creates a veth pair on a private /30 picked from 100.127.0.0/16 (a
//     CGNAT block, avoiding every network already on the host) and gives
//     the child a default route to the host end only;
//   - installs one nftables table in the HOST namespace (where the child's
//     root cannot touch it): every TCP connection arriving from the veth is
//     DNAT'ed to a transparent listener ([transparent.Listener]) on the
//     host end, UDP port 53 to a DNS responder on the host end, and
//     everything else from or to the veth is dropped (input and forward);
//   - answers DNS itself ([DNS]): every valid name gets a synthetic address
//     from 198.18.0.0/15 that maps back to the name, so connections without
//     SNI or Host still carry one; the real name is resolved on airlock's
//     side when the pipeline dials;
//   - removes table and veth when the command ends, on failure too; tables
//     left by a killed run are collected at the next run.
//
// Inside, the init process makes mounts private, remounts /proc for the
// new PID namespace (host processes are invisible), covers each hidden
// directory (the airlock home) with an empty tmpfs, writes back the few
// files the child needs (the CA bundle) at their usual paths, points
// /etc/resolv.conf at the responder, drops every capability from the
// bounding set and sets no_new_privs (so a root CMD cannot undo the mounts
// or reach the host namespaces), then runs CMD as PID 2: in the terminal's
// foreground process group when stdin is a terminal (Ctrl-C reaches CMD
// once), with signals sent to airlock forwarded, and exits with CMD's
// status.
//
// # Unprivileged mode
//
// For ordinary users (user namespaces enabled) a user namespace owns the
// network namespace; the init builds loopback plus a veth with both ends
// inside, redirects TCP and UDP 53 to sockets it opens on loopback, and
// hands them to Run over an inherited Unix socket (SCM_RIGHTS). No link
// to the host exists. See user_linux.go.
//
// # Identity
//
// The run is the agent: [RunCredential] issues a short-lived credential
// before CMD starts and revokes it when CMD ends.
package isolate

package isolate

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// tablePrefix names the nftables tables runs install (suffix: airlock's pid).
const tablePrefix = "airlock_iso_"

// subnetBlock is where the veth /30s come from.
var subnetBlock = netip.MustParsePrefix("100.127.0.0/16")

// network is one run's veth pair and addresses.
type network struct {
	HostIf      string
	Host, Child netip.Addr
	Bits        int
	table       string
}

// pickSubnet returns a random /30 of subnetBlock overlapping no network
// configured on the host.
func pickSubnet() (netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list host addresses: %w", err)
	}
	var taken []netip.Prefix
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			taken = append(taken, p.Masked())
		}
	}
	base := subnetBlock.Addr().As4()
	for range 64 {
		var r [2]byte
		_, _ = rand.Read(r[:])
		n := binary.BigEndian.Uint16(r[:]) &^ 3
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{base[0], base[1], byte(n >> 8), byte(n)}), 30)
		free := true
		for _, t := range taken {
			if t.Overlaps(p) {
				free = false
				break
			}
		}
		if free && n != 0 {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /30 in %s", subnetBlock)
}

// setupNetwork creates the veth pair into the namespace of pid and
// configures both ends.
func setupNetwork(pid int) (*network, error) {
	p, err := pickSubnet()
	if err != nil {
		return nil, err
	}
	n := &network{HostIf: fmt.Sprintf("alh%d", pid), Host: p.Addr().Next(), Bits: 30,
		table: tablePrefix + strconv.Itoa(os.Getpid()) + "_" + strconv.Itoa(pid)}
	n.Child = n.Host.Next()
	if err := ipBatch(0, fmt.Sprintf(
		"link add %s type veth peer name eth0 netns %d\naddr add %s/30 dev %s\nlink set %s up\n",
		n.HostIf, pid, n.Host, n.HostIf, n.HostIf)); err != nil {
		return nil, err
	}
	if err := ipBatch(pid, fmt.Sprintf(
		"link set lo up\naddr add %s/30 dev eth0\nlink set eth0 up\nroute add default via %s\n", n.Child, n.Host)); err != nil {
		n.teardown()
		return nil, err
	}
	// No IPv6 inside: the only route is the IPv4 /30.
	if out, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-n", "sysctl", "-qw",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1").CombinedOutput(); err != nil && !bytes.Contains(out, []byte("No such file")) {
		n.teardown()
		return nil, fmt.Errorf("disable IPv6 in the namespace: %w: %s", err, bytes.TrimSpace(out))
	}
	return n, nil
}

// ipBatch runs `ip -batch -` on the host (pid 0) or inside pid's netns.
func ipBatch(pid int, script string) error {
	argv := []string{"ip", "-batch", "-"}
	if pid != 0 {
		argv = append([]string{"nsenter", "-t", strconv.Itoa(pid), "-n"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// rules is the host-side nftables table: TCP from the child to the
// transparent listener, UDP 53 to the DNS responder, everything else from
// or to the veth dropped. The nat chain sees only a connection's first
// packet; the input chain sees every packet the host receives, so a
// packet not from the veth costs it one comparison (the jump).
func (n *network) rules(tport, dport uint16) string {
	return fmt.Sprintf(`table inet %[1]s {
	chain airlock_pre {
		type nat hook prerouting priority dstnat - 10; policy accept;
		iifname "%[2]s" meta nfproto ipv4 udp dport 53 dnat ip to %[3]s:%[5]d
		iifname "%[2]s" meta nfproto ipv4 meta l4proto tcp dnat ip to %[3]s:%[4]d
	}
	chain airlock_in {
		type filter hook input priority filter - 10; policy accept;
		iifname "%[2]s" jump airlock_from_child
	}
	chain airlock_from_child {
		ip daddr %[3]s tcp dport %[4]d accept
		ip daddr %[3]s udp dport %[5]d accept
		counter drop
	}
	chain airlock_fwd {
		type filter hook forward priority filter - 10; policy accept;
		iifname "%[2]s" counter drop
		oifname "%[2]s" counter drop
	}
}
`, n.table, n.HostIf, n.Host, tport, dport)
}

// install loads the table.
func (n *network) install(tport, dport uint16) error {
	return nft(n.rules(tport, dport))
}

func nft(script string) error {
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// teardown removes the table and the veth; both may already be gone.
func (n *network) teardown() error {
	var errs []string
	if err := nft("delete table inet " + n.table + "\n"); err != nil && !strings.Contains(err.Error(), "No such file") {
		errs = append(errs, err.Error())
	}
	if err := ipBatch(0, "link del "+n.HostIf+"\n"); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		errs = append(errs, err.Error())
	}
	if errs != nil {
		return fmt.Errorf("isolate cleanup: %s", strings.Join(errs, "; "))
	}
	return nil
}

var staleTable = regexp.MustCompile(`table inet (` + tablePrefix + `(\d+)_(\d+))`)

// collectStale deletes tables (and veths) of runs whose airlock process
// is gone (killed before its cleanup ran).
func collectStale() {
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return
	}
	for _, m := range staleTable.FindAllStringSubmatch(string(out), -1) {
		if _, err := os.Stat("/proc/" + m[2]); err == nil {
			continue
		}
		_ = nft("delete table inet " + m[1] + "\n")
		_ = ipBatch(0, "link del alh"+m[3]+"\n")
	}
}

package testenv

import "net"

// HostIPv4 returns a non-loopback IPv4 address of this host, or nil: the
// address the loopback-only tests try to reach a listener from.
func HostIPv4() net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	return nil
}

package runners

import (
	"net"
	"strconv"
)

// ProcTCP exposes procTCP to the socket tests: the TCP sockets of pid's
// network namespace.
func ProcTCP(pid int, fn func(local, remote net.IP, lport int, state, inode string)) {
	procTCP(strconv.Itoa(pid), fn)
}

package runners

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Embedded prism, kept off the network.
//
// Prism's job server listens on every interface (net.Listen(":port")), and
// nothing in Beam lets a caller choose the address or pass a listener. So
// fineo starts the embedded job server itself, finds its listening socket
// among this process's file descriptors, and attaches a classic BPF socket
// filter that drops every packet whose source address is not loopback
// (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). The kernel runs the filter on
// every segment for the listener — a SYN from another host is dropped, so
// the connection never opens — and accepted connections inherit it. The
// socket still shows as [::]:PORT in netstat; it just answers nobody else.
//
// Remaining window: between prism's Listen and the filter (microseconds, a
// port nobody can know in advance) a connection from elsewhere could be
// accepted; startGuardedPrism then finds it in /proc/net/tcp{,6} and
// refuses to run.

// loopbackOnly is the filter: accept (keep the whole packet) when the
// network header's source address is loopback, else drop.
func loopbackOnly() ([]bpf.RawInstruction, error) {
	const net = 0xfff00000 // SKF_NET_OFF: offsets from the network header
	keep, drop := bpf.RetConstant{Val: 0xffffffff}, bpf.RetConstant{Val: 0}
	return bpf.Assemble([]bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: net + 0, Size: 1}, // version << 4 | IHL
		/* 1 */ bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},
		/* 2 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipFalse: 3}, // IPv4 → 3, else → 6
		/* 3 */ bpf.LoadAbsolute{Off: net + 12, Size: 4}, // IPv4 source
		/* 4 */ bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 24},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 127, SkipTrue: 13, SkipFalse: 14}, // 127/8 → keep
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipFalse: 13}, // IPv6 → 7, else drop
		/* 7 */ bpf.LoadAbsolute{Off: net + 8, Size: 4}, // IPv6 source, word 0
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 11},
		/* 9 */ bpf.LoadAbsolute{Off: net + 12, Size: 4}, // word 1
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 9},
		/* 11 */ bpf.LoadAbsolute{Off: net + 16, Size: 4}, // word 2
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 4}, // ::w3 → 17
		/* 13 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xffff, SkipFalse: 6}, // ::ffff:a.b.c.d → 14
		/* 14 */ bpf.LoadAbsolute{Off: net + 20, Size: 4},
		/* 15 */ bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 24},
		/* 16 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 127, SkipTrue: 2, SkipFalse: 3}, // mapped 127/8 → keep
		/* 17 */ bpf.LoadAbsolute{Off: net + 20, Size: 4}, // word 3
		/* 18 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipFalse: 1}, // ::1 → keep
		/* 19 */ keep,
		/* 20 */ drop,
	})
}

// startGuardedPrism starts prism's job server in this process on a free
// port, filters its socket to loopback peers and returns its endpoint.
func startGuardedPrism(ctx context.Context) (string, error) {
	prog, err := loopbackOnly()
	if err != nil {
		return "", fmt.Errorf("runners: assembling the loopback filter: %w", err)
	}
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		return "", err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	before := listenerInodes(port)
	if _, err := prism.CreateJobServer(ctx, prism.Options{Port: port}); err != nil {
		return "", fmt.Errorf("runners: starting the embedded prism job server: %w", err)
	}
	inodes := listenerInodes(port)
	for ino := range before {
		delete(inodes, ino)
	}
	fds := socketFDs(inodes)
	if len(fds) == 0 {
		return "", fmt.Errorf("runners: the embedded prism job server's socket (port %d) was not found; refusing to run it unguarded", port)
	}
	for _, fd := range fds {
		err := attachFilter(fd, prog)
		if errors.Is(err, unix.EOPNOTSUPP) {
			// Some sandboxed kernels refuse socket filters on TCP sockets.
			slog.Warn("runners: this kernel cannot filter TCP sockets; the embedded prism job server is reachable from the network for the job's duration",
				"port", port, "err", err)
			return "localhost:" + strconv.Itoa(port), nil
		}
		if err != nil {
			return "", fmt.Errorf("runners: filtering the prism job server's socket to loopback: %w", err)
		}
	}
	if peers := remotePeers(port); len(peers) > 0 {
		return "", fmt.Errorf("runners: a connection from %v reached the embedded job server before it was guarded; refusing to run", peers)
	}
	return "localhost:" + strconv.Itoa(port), nil
}

// attachFilter attaches a classic BPF program to socket fd.
func attachFilter(fd int, prog []bpf.RawInstruction) error {
	raw := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		raw[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(raw)), Filter: &raw[0]})
}

// procTCP calls fn for every row of /proc/<pid>/net/tcp and tcp6 (pid
// "self": this process's network namespace): local and remote address,
// local port, state, inode.
func procTCP(pid string, fn func(local, remote net.IP, lport int, state, inode string)) {
	for _, file := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile("/proc/" + pid + "/net/" + file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // header
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 10 {
				continue
			}
			lh, lp, _ := strings.Cut(f[1], ":")
			rh, _, _ := strings.Cut(f[2], ":")
			port, err := strconv.ParseUint(lp, 16, 16)
			if err != nil {
				continue
			}
			fn(procIP(lh), procIP(rh), int(port), f[3], f[9])
		}
	}
}

// procIP decodes an address of /proc/net/tcp{,6}: 32-bit words in host
// (little-endian) byte order.
func procIP(h string) net.IP {
	b := make([]byte, len(h)/2)
	for i := range b {
		v, _ := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		b[i] = byte(v)
	}
	for i := 0; i+3 < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b)
}

// listenerInodes returns the inodes of the listening sockets on port.
func listenerInodes(port int) map[string]bool {
	out := map[string]bool{}
	procTCP("self", func(_, _ net.IP, lport int, state, inode string) {
		if lport == port && state == "0A" {
			out[inode] = true
		}
	})
	return out
}

// remotePeers returns the non-loopback peers connected to port.
func remotePeers(port int) []string {
	var out []string
	procTCP("self", func(_, remote net.IP, lport int, state, _ string) {
		if lport == port && state != "0A" && !remote.IsLoopback() && !remote.IsUnspecified() {
			out = append(out, remote.String())
		}
	})
	return out
}

// socketFDs returns this process's file descriptors of the given socket inodes.
func socketFDs(inodes map[string]bool) []int {
	var fds []int
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			if fd, err := strconv.Atoi(e.Name()); err == nil {
				fds = append(fds, fd)
			}
		}
	}
	return fds
}

package runners

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/fineo-io/ingest/internal/testenv"
)

// TestLoopbackFilter checks the socket filter program itself, on a UDP
// socket (the kernel runs socket filters the same way for UDP and TCP, and
// some sandboxed kernels refuse them on TCP sockets only): datagrams from
// 127.0.0.1 and ::1 arrive; a datagram from this host's non-loopback
// address, to the same socket, is dropped.
func TestLoopbackFilter(t *testing.T) {
	prog, err := loopbackOnly()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{}) // [::]:port, dual-stack
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := conn.LocalAddr().(*net.UDPAddr).Port

	send := func(from, to net.IP) bool {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: from}, &net.UDPAddr{IP: to, Port: port})
		if err != nil {
			t.Fatalf("dial from %s: %v", from, err)
		}
		defer c.Close()
		msg := []byte("from " + from.String())
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _, err := conn.ReadFromUDP(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) != string(msg) {
			t.Fatalf("got %q, want %q", buf[:n], msg)
		}
		return true
	}
	other := testenv.HostIPv4()
	if other == nil {
		t.Skip("no non-loopback address on this host to send from")
	}
	// Control: without the filter, a datagram from the host address arrives.
	if !send(other, other) {
		t.Fatalf("without a filter, a datagram from %s did not arrive: the test cannot tell", other)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var aerr error
	raw.Control(func(fd uintptr) { aerr = attachFilter(int(fd), prog) })
	if aerr != nil {
		t.Fatalf("attaching the filter to a UDP socket: %v", aerr)
	}
	if !send(net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 1)) {
		t.Error("a datagram from 127.0.0.1 was dropped")
	}
	if !send(net.IPv6loopback, net.IPv6loopback) {
		t.Error("a datagram from ::1 was dropped")
	}
	if send(other, other) {
		t.Errorf("a datagram from %s (not loopback) passed the filter", other)
	}
	// The socket still works for loopback after a drop.
	if !send(net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 1)) {
		t.Error("a datagram from 127.0.0.1 was dropped after the drop")
	}
}

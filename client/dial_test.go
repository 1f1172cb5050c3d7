package client

import (
	"bufio"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestFailedReconnectsCloseTheirSockets: after a first connection, the
// server accepts every reconnect and never answers; each attempt times
// out. Every attempt's socket must be closed, not left to the garbage
// collector, which is what nats.go alone does.
func TestFailedReconnectsCloseTheirSockets(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts open files in /proc/self/fd")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() {
		ln.Close()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if n > 0 {
					// Silent until the client gives up and closes.
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					c.Read(make([]byte, 1))
					return
				}
				c.Write([]byte("INFO {\"server_id\":\"test\",\"max_payload\":1048576}\r\n"))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(line, "PING") {
						c.Write([]byte("PONG\r\n"))
						// Connected: now drop it.
						time.Sleep(50 * time.Millisecond)
						return
					}
				}
			}()
		}
	}()
	u, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(u, &Token{JWT: "jwt", Servers: []string{"nats://" + ln.Addr().String()}, InboxPrefix: "_INBOX_test"},
		nats.Timeout(100*time.Millisecond),
		// A fixed short wait: this is about sockets, not backoff.
		nats.CustomReconnectDelay(func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	open := func() int {
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(fds)
	}
	start := open()
	for deadline := time.Now().Add(10 * time.Second); c.Stats().Reconnects < 12; {
		if time.Now().After(deadline) {
			t.Fatalf("%d reconnect attempts in 10 s, want 12", c.Stats().Reconnects)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The attempt in progress, and its other end in the server.
	if n := open(); n > start+3 {
		t.Errorf("%d files open after %d failed attempts, %d before: their sockets were left open", n, c.Stats().Reconnects, start)
	}
}

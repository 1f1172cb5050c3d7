package gatewaytest

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
)

// RawConn is a NATS client over WebSocket written out by hand: a minimal
// handshake, the NATS protocol as text, no client-side checks and no
// reading unless asked. Tests use it to do what a well-behaved client never
// does: publish past the max payload, or stop reading.
type RawConn struct {
	conn net.Conn
	br   *bufio.Reader
	// Info is the server's INFO, as decoded JSON.
	Info map[string]any
	// Closed is the close frame the server sent ("1008 Slow Consumer…"),
	// once ReadUntil has met one.
	Closed string
	buf    strings.Builder
}

// DialRaw connects to the NATS WebSocket URL wsURL and authenticates with
// jwt, signing the server's nonce with key. The CONNECT is answered (PONG)
// before it returns; an -ERR instead is returned as the error.
func DialRaw(wsURL, jwt string, key nkeys.KeyPair) (*RawConn, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &RawConn{conn: conn, br: bufio.NewReader(conn)}
	if err := c.handshake(u); err != nil {
		conn.Close()
		return nil, err
	}
	line, err := c.ReadUntil("\r\n", 5*time.Second)
	if err != nil || !strings.HasPrefix(line, "INFO ") {
		conn.Close()
		return nil, fmt.Errorf("no INFO: %q %v", line, err)
	}
	c.buf.Reset()
	if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(line, "INFO "))), &c.Info); err != nil {
		conn.Close()
		return nil, fmt.Errorf("INFO %q: %w", line, err)
	}
	nonce, _ := c.Info["nonce"].(string)
	sig, err := key.Sign([]byte(nonce))
	if err != nil {
		conn.Close()
		return nil, err
	}
	connect, _ := json.Marshal(map[string]any{
		"verbose": false, "pedantic": false, "protocol": 1, "headers": true, "lang": "raw", "version": "0",
		"jwt": jwt, "sig": base64.RawURLEncoding.EncodeToString(sig),
	})
	if err := c.Send("CONNECT " + string(connect) + "\r\nPING\r\n"); err != nil {
		conn.Close()
		return nil, err
	}
	got, err := c.ReadUntil("PONG\r\n", 5*time.Second)
	if err != nil {
		conn.Close()
		if i := strings.Index(got, "-ERR"); i >= 0 {
			return nil, errors.New(strings.TrimSpace(got[i:]))
		}
		return nil, fmt.Errorf("connect: %q: %w", got, err)
	}
	return c, nil
}

func (c *RawConn) handshake(u *url.URL) error {
	var k [16]byte
	rand.Read(k[:])
	path := u.RequestURI()
	if path == "" {
		path = "/"
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(k[:]) + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(c.conn, req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("websocket handshake: %s", resp.Status)
	}
	return nil
}

// Send writes protocol text to the server as one masked binary frame.
func (c *RawConn) Send(proto string) error {
	p := []byte(proto)
	hdr := []byte{0x82} // FIN, binary
	switch n := len(p); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xffff:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = binary.BigEndian.AppendUint64(append(hdr, 0x80|127), uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	for i := range p {
		p[i] ^= mask[i%4]
	}
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(append(hdr, p...))
	return err
}

// ReadUntil reads frames until the text read since the last call that
// returned without error contains want, and returns that text (up to and
// including want). It returns what it read and an error when the timeout
// passes, the connection ends or the server sends a close frame.
func (c *RawConn) ReadUntil(want string, timeout time.Duration) (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.conn.SetReadDeadline(time.Time{})
	for {
		if s := c.buf.String(); strings.Contains(s, want) {
			i := strings.Index(s, want) + len(want)
			c.buf.Reset()
			c.buf.WriteString(s[i:])
			return s[:i], nil
		}
		op, payload, err := c.frame()
		if err != nil {
			return c.buf.String(), err
		}
		switch op {
		case 0x8: // close
			if len(payload) >= 2 {
				c.Closed = fmt.Sprintf("%d %s", binary.BigEndian.Uint16(payload), payload[2:])
			}
			return c.buf.String(), fmt.Errorf("server closed the websocket: %s", c.Closed)
		case 0x0, 0x1, 0x2: // continuation, text, binary
			c.buf.Write(payload)
		}
	}
}

// Drain reads and discards everything until the server ends the
// connection, and returns why it ended: the close frame, if one came, or
// the read error. It gives up after timeout, with an error saying the
// connection is still open.
func (c *RawConn) Drain(timeout time.Duration) (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		op, payload, err := c.frame()
		if err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				return "", fmt.Errorf("still connected after %s", timeout)
			}
			return c.Closed, nil
		}
		if op == 0x8 && len(payload) >= 2 {
			c.Closed = fmt.Sprintf("%d %s", binary.BigEndian.Uint16(payload), payload[2:])
		}
	}
}

// frame reads one frame. The server never masks, and without an extension
// negotiated it never compresses.
func (c *RawConn) frame() (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 64<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, p, nil
}

// LocalAddr is the client's end of the connection, as the server's log
// names it.
func (c *RawConn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// Close closes the connection.
func (c *RawConn) Close() error { return c.conn.Close() }

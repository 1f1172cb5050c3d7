// Package gatewaytest runs a real embedded natter gateway for tests and
// offers a small Go client of the TVM and of NATS over WebSocket, the way a
// browser uses them.
package gatewaytest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway"
)

// Config returns a gateway configuration for an embedded server on random
// loopback ports, storing in dir.
func Config(dir string) gateway.Config {
	return gateway.Config{DataDir: dir, ClientAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"}
}

// RunGateway starts an embedded gateway in a temp dir and stops it when the
// test ends.
func RunGateway(tb testing.TB) *gateway.Gateway {
	tb.Helper()
	return RunGatewayWith(tb, Config(tb.TempDir()))
}

// RunGatewayWith starts a gateway with cfg and stops it when the test ends.
func RunGatewayWith(tb testing.TB, cfg gateway.Config) *gateway.Gateway {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gw, err := gateway.Open(ctx, cfg)
	if err != nil {
		tb.Fatalf("open gateway: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gw.Close(ctx)
	})
	return gw
}

// WaitFor polls check until it returns nil, failing the test with its last
// error after timeout.
func WaitFor(tb testing.TB, timeout time.Duration, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// User is a chat user as a browser is one: its own nkey pair, whose seed
// never leaves it.
type User struct{ *client.Identity }

// NewUser makes a user with a fresh key pair.
func NewUser(tb testing.TB) *User {
	tb.Helper()
	id, err := client.NewIdentity()
	if err != nil {
		tb.Fatal(err)
	}
	return &User{id}
}

// Token is the TVM's answer to a token request.
type Token = client.Token

// APIError is an error answer of the TVM.
type APIError = client.APIError

func api(baseURL string) *client.API { return &client.API{BaseURL: baseURL} }

// RequestToken asks the TVM at baseURL for a token for rooms.
func (u *User) RequestToken(baseURL, name string, rooms ...string) (*Token, error) {
	return api(baseURL).Token(context.Background(), u.Identity, name, rooms...)
}

// MustToken is RequestToken that fails the test on error.
func (u *User) MustToken(tb testing.TB, baseURL string, rooms ...string) *Token {
	tb.Helper()
	tok, err := u.RequestToken(baseURL, "", rooms...)
	if err != nil {
		tb.Fatalf("token for %v: %v", rooms, err)
	}
	return tok
}

// CreateRoom asks the TVM at baseURL to create a room named name (an
// element's name when empty), as the bearer of tok.
func (u *User) CreateRoom(baseURL string, tok *Token, name string) (natter.Room, error) {
	return api(baseURL).CreateRoom(context.Background(), tok, name)
}

// MustCreateRoom is CreateRoom that fails the test on error.
func (u *User) MustCreateRoom(tb testing.TB, baseURL string, tok *Token, name string) natter.Room {
	tb.Helper()
	room, err := u.CreateRoom(baseURL, tok, name)
	if err != nil {
		tb.Fatalf("create room %q: %v", name, err)
	}
	return room
}

// MustNewRooms creates a room per name the way a browser does before it is
// in any room: with a token for no room. It returns the rooms' ids, for
// which u may then ask a token.
func (u *User) MustNewRooms(tb testing.TB, baseURL string, names ...string) []string {
	tb.Helper()
	tok := u.MustToken(tb, baseURL)
	ids := make([]string, len(names))
	for i, name := range names {
		ids[i] = u.MustCreateRoom(tb, baseURL, tok, name).ID
	}
	return ids
}

// PostJSON posts body and decodes a 2xx answer into out; other answers come
// back as *APIError.
func PostJSON(url string, body []byte, out any) error {
	return DoJSON(http.MethodPost, url, "", body, out)
}

// GetJSON gets url and decodes a 2xx answer into out, like PostJSON.
func GetJSON(url string, out any) error {
	return DoJSON(http.MethodGet, url, "", nil, out)
}

// DoJSON sends a request with body (as JSON, when not nil) and, when
// bearer is set, Authorization: Bearer; a 2xx answer is decoded into out,
// others come back as *APIError.
func DoJSON(method, url, bearer string, body []byte, out any) error {
	return client.DoJSON(context.Background(), nil, method, url, bearer, body, out)
}

// Conn is a user's NATS connection over WebSocket. It records the server's
// asynchronous errors, such as permission violations.
type Conn struct {
	*client.Conn
	mu   sync.Mutex
	errs []error
}

// Connect connects u over WebSocket with tok, setting its private inbox
// prefix. Reconnects use the newest token given to SetToken.
func (u *User) Connect(tb testing.TB, tok *Token, opts ...nats.Option) *Conn {
	tb.Helper()
	c, err := u.Dial(tok, opts...)
	if err != nil {
		tb.Fatalf("connect %s: %v", strings.Join(tok.Servers, ","), err)
	}
	tb.Cleanup(c.Close)
	return c
}

// Dial is Connect that returns the error.
func (u *User) Dial(tok *Token, opts ...nats.Option) (*Conn, error) {
	c := &Conn{}
	opts = append([]nats.Option{
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
		}),
	}, opts...)
	cc, err := client.Dial(u.Identity, tok, opts...)
	if err != nil {
		return nil, err
	}
	c.Conn = cc
	return c, nil
}

// Errors returns the asynchronous errors seen so far.
func (c *Conn) Errors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

// WaitError waits until an asynchronous error mentioning want arrives.
func (c *Conn) WaitError(tb testing.TB, want string) {
	tb.Helper()
	WaitFor(tb, 5*time.Second, func() error {
		for _, err := range c.Errors() {
			if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
				return nil
			}
		}
		return fmt.Errorf("no error mentioning %q among %v", want, c.Errors())
	})
}

// ErrPermission is the text nats.go reports for a permissions violation.
var ErrPermission = errors.New("permissions violation")

// AssertRefused dials up to five times: every attempt must fail, and at
// least one must fail with an error that named accepts. Over WebSocket the
// server may close before the client has read its -ERR, so the client
// sometimes sees a broken pipe instead of the cause.
func AssertRefused[C interface{ Close() }](tb testing.TB, dial func() (C, error), named func(error) bool) {
	tb.Helper()
	var errs []error
	for range 5 {
		c, err := dial()
		if err == nil {
			c.Close()
			tb.Fatal("connected")
		}
		if named(err) {
			return
		}
		errs = append(errs, err)
	}
	tb.Fatalf("refused, but never saying why: %v", errs)
}

// IsAuthorization accepts the server's authorization violation.
func IsAuthorization(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization violation")
}

// IsAccountFull accepts the refusal of a connection over the account's cap.
func IsAccountFull(err error) bool {
	return errors.Is(err, nats.ErrMaxAccountConnectionsExceeded) || strings.Contains(err.Error(), "maximum account active connections")
}

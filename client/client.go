// Package client is a Go client of natter, doing what the browser app does:
// it makes its own key pair, gets tokens from the TVM, talks to NATS over
// WebSocket, signs its messages, and follows rooms in seq order, reading
// from the history exactly what it missed. Tests and the benchmark use it.
package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/nats-io/nuid"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/sealed"
)

// Identity is a user: an nkey pair whose seed never leaves the client.
type Identity struct {
	Key nkeys.KeyPair
	ID  string // the public key
}

// NewIdentity makes a fresh user key pair.
func NewIdentity() (*Identity, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	return &Identity{Key: kp, ID: pub}, nil
}

// Sign signs a message text for room under id, as the gateway verifies it.
func (u *Identity) Sign(room, id, text string) (string, error) {
	sig, err := u.Key.Sign(natter.SignedPayload(room, id, text))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sig), nil
}

// Token is the TVM's answer to a token request.
type Token = natter.TokenResponse

// APIError is an error answer of the TVM.
type APIError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// API is the TVM's HTTP API at BaseURL.
type API struct {
	BaseURL string
	HTTP    *http.Client // http.DefaultClient when nil
}

// Token asks for a token for rooms.
func (a *API) Token(ctx context.Context, u *Identity, name string, rooms ...string) (*Token, error) {
	return a.RequestToken(ctx, natter.TokenRequest{PublicKey: u.ID, Name: name, Rooms: rooms})
}

// RequestToken asks for the token req describes.
func (a *API) RequestToken(ctx context.Context, req natter.TokenRequest) (*Token, error) {
	if req.Rooms == nil {
		req.Rooms = []string{}
	}
	var tok Token
	if err := a.do(ctx, http.MethodPost, "/api/v1/token", "", req, &tok); err != nil {
		return nil, err
	}
	return &tok, nil
}

// CreateRoom creates a room, named after an element when name is empty.
func (a *API) CreateRoom(ctx context.Context, tok *Token, name string) (natter.Room, error) {
	return a.createRoom(ctx, tok, name, false)
}

// CreateSealedRoom creates a sealed room (docs/sealed.md). The room key is
// the caller's to make (sealed.NewKey) and share: the server never sees it.
func (a *API) CreateSealedRoom(ctx context.Context, tok *Token, name string) (natter.Room, error) {
	return a.createRoom(ctx, tok, name, true)
}

func (a *API) createRoom(ctx context.Context, tok *Token, name string, sealed bool) (natter.Room, error) {
	req := map[string]any{}
	if name != "" {
		req["name"] = name
	}
	if sealed {
		req["sealed"] = true
	}
	var room natter.Room
	err := a.do(ctx, http.MethodPost, "/api/v1/rooms", tok.JWT, req, &room)
	return room, err
}

// Rooms lists the open rooms.
func (a *API) Rooms(ctx context.Context) ([]natter.Room, error) {
	var resp struct {
		Rooms []natter.Room `json:"rooms"`
	}
	err := a.do(ctx, http.MethodGet, "/api/v1/rooms", "", nil, &resp)
	return resp.Rooms, err
}

// Stats reads the service's counters.
func (a *API) Stats(ctx context.Context) (natter.Stats, error) {
	var s natter.Stats
	err := a.do(ctx, http.MethodGet, "/api/v1/stats", "", nil, &s)
	return s, err
}

func (a *API) do(ctx context.Context, method, path, bearer string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	return DoJSON(ctx, a.HTTP, method, strings.TrimRight(a.BaseURL, "/")+path, bearer, body, out)
}

// DoJSON sends body as it is (as JSON, when not nil) with Authorization:
// Bearer when bearer is set, using hc (http.DefaultClient when nil). A 2xx
// answer is decoded into out; any other comes back as *APIError. Tests use
// it to send bodies the API types cannot express.
func DoJSON(ctx context.Context, hc *http.Client, method, url, bearer string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := roundTrip(hc, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// roundTrip sends req with hc (http.DefaultClient when nil). A 2xx answer
// is returned for the caller to read and close; any other comes back as
// *APIError.
func roundTrip(hc *http.Client, req *http.Request) (*http.Response, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e struct{ Error APIError }
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			return nil, fmt.Errorf("%s %s: status %d with an undecodable body: %w", req.Method, req.URL, resp.StatusCode, err)
		}
		e.Error.Status = resp.StatusCode
		return nil, &e.Error
	}
	return resp, nil
}

// Conn is a user's NATS connection over WebSocket.
type Conn struct {
	*nats.Conn
	User *Identity

	mu        sync.Mutex
	jwt       string
	expires   time.Time
	renew     func(context.Context) (*Token, error)
	reconnect []func()
}

// Dial connects u over WebSocket with tok and its private inbox prefix.
// Reconnects use the newest token given to SetToken, or a new one from the
// function given to RenewWith when that one has expired.
func Dial(u *Identity, tok *Token, opts ...nats.Option) (*Conn, error) {
	c := &Conn{User: u, jwt: tok.JWT, expires: tok.ExpiresAt}
	opts = append([]nats.Option{
		nats.UserJWT(c.token, func(nonce []byte) ([]byte, error) { return u.Key.Sign(nonce) }),
		nats.CustomInboxPrefix(tok.InboxPrefix),
		// nats.go refuses a WebSocket frame larger than 8 times the max
		// payload (64 KiB with natter's 8 KiB) and drops the connection, but
		// nats-server frames everything pending for a non-browser client
		// as one frame, so any burst over 64 KiB would disconnect us. To a
		// client whose User-Agent starts with Mozilla/ the server sends
		// frames of at most 4 KiB, as it does to the web app.
		nats.WebSocketConnectionHeaders(http.Header{"User-Agent": {"Mozilla/5.0 (compatible; natter-go-client)"}}),
		nats.Timeout(5 * time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectJitter(200*time.Millisecond, 200*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) {
			c.mu.Lock()
			hooks := append([]func(){}, c.reconnect...)
			c.mu.Unlock()
			for _, h := range hooks {
				h()
			}
		}),
	}, opts...)
	// The reconnect delay is where an expired token is renewed: before
	// the socket is opened, since nats-server gives a new connection 2 s
	// to authenticate. It keeps the delay the options ask for.
	o := nats.GetDefaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	delay := o.CustomReconnectDelayCB
	if delay == nil {
		wait, jitter := o.ReconnectWait, o.ReconnectJitter
		if o.Secure || o.TLSConfig != nil {
			jitter = o.ReconnectJitterTLS
		}
		delay = func(attempts int) time.Duration { return Backoff(attempts, wait, jitter) }
	}
	opts = append(opts, nats.CustomReconnectDelay(func(attempts int) time.Duration {
		start := time.Now()
		c.renewIfExpiring()
		return max(0, delay(attempts)-time.Since(start))
	}))
	// nats.go (v1.55) leaves the socket of a reconnect attempt that fails
	// after dialing (a handshake timeout, a refused token) open until it
	// is garbage collected; in a reconnect storm that runs a process out
	// of files. It dials again only once it is done with the last socket,
	// so the dialer closes that one first.
	inner := o.CustomDialer
	if inner == nil {
		d := &net.Dialer{Timeout: o.Timeout}
		if o.Dialer != nil {
			*d = *o.Dialer
		}
		inner = d
	}
	opts = append(opts, nats.SetCustomDialer(&closingDialer{inner: inner}))
	nc, err := nats.Connect(strings.Join(tok.Servers, ","), opts...)
	if err != nil {
		return nil, err
	}
	c.Conn = nc
	return c, nil
}

// closingDialer closes the connection it dialed last before dialing again.
type closingDialer struct {
	inner nats.CustomDialer
	mu    sync.Mutex
	last  net.Conn
}

func (d *closingDialer) Dial(network, address string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last != nil {
		d.last.Close()
		d.last = nil
	}
	conn, err := d.inner.Dial(network, address)
	if err == nil {
		d.last = conn
	}
	return conn, err
}

// SkipTLSHandshake keeps what the wrapped dialer says, if it says.
func (d *closingDialer) SkipTLSHandshake() bool {
	s, ok := d.inner.(interface{ SkipTLSHandshake() bool })
	return ok && s.SkipTLSHandshake()
}

// MaxBackoff bounds the wait between two reconnect attempts.
const MaxBackoff = 30 * time.Second

// Backoff is the wait before reconnect attempt n (1 for the first): wait
// plus up to jitter at first, then a random wait up to twice as long after
// each failed attempt, at most MaxBackoff ("full jitter"). When a server
// drops thousands of clients at once, a fixed wait has them all come back
// faster than it can take them: the handshakes queue past the clients'
// timeouts, every client retries, and hardly anyone gets in. Doubling the
// spread after each failure lets the load fall to what the server takes.
func Backoff(n int, wait, jitter time.Duration) time.Duration {
	base := wait + jitter
	if n <= 1 || base <= 0 {
		if jitter > 0 {
			return wait + rand.N(jitter)
		}
		return wait
	}
	spread := min(MaxBackoff, base<<min(n-1, 16))
	return wait + rand.N(max(spread-wait, 1))
}

// SetToken makes the next (re)connect use tok.
func (c *Conn) SetToken(tok *Token) {
	c.mu.Lock()
	c.jwt, c.expires = tok.JWT, tok.ExpiresAt
	c.mu.Unlock()
}

// RenewWith makes a reconnect whose token has expired, or expires within
// renewMargin, first get a new one from renew, as a client whose token ran
// out while it was away must. renew is called from nats.go's reconnect,
// in the delay before an attempt, with the time left of renewBudget; a
// failed renewal is tried again after a backoff (full jitter over a
// doubling ceiling) until the budget is spent, and the attempt after that
// offers the token it has.
func (c *Conn) RenewWith(renew func(context.Context) (*Token, error)) {
	c.mu.Lock()
	c.renew = renew
	c.mu.Unlock()
}

const (
	renewMargin = time.Second
	renewBudget = 30 * time.Second
)

// token is nats.go's UserJWT callback, which it calls with the
// connection's lock held: it must not wait.
func (c *Conn) token() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jwt, nil
}

// renewIfExpiring renews the token through the RenewWith function, if
// there is one and the token expires within renewMargin.
func (c *Conn) renewIfExpiring() {
	deadline := time.Now().Add(renewBudget)
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		expires, renew := c.expires, c.renew
		c.mu.Unlock()
		if renew == nil || expires.IsZero() || time.Until(expires) > renewMargin {
			return
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		tok, err := renew(ctx)
		cancel()
		if err == nil {
			c.SetToken(tok)
			return
		}
		// As the web app: 250 ms and full jitter over 500 ms × 2^attempt.
		backoff := 250*time.Millisecond + rand.N(min(30*time.Second, 500*time.Millisecond<<min(attempt, 10)))
		if time.Until(deadline) < backoff {
			return
		}
		time.Sleep(backoff)
	}
}

// OnReconnect calls f after each reconnect, once the subscriptions are
// restored.
func (c *Conn) OnReconnect(f func()) {
	c.mu.Lock()
	c.reconnect = append(c.reconnect, f)
	c.mu.Unlock()
}

// request sends v to the gateway and decodes its reply into out, which must
// have an Error field; a refusal comes back as *natter.Error.
func (c *Conn) request(ctx context.Context, subject string, v any, out any, errOf func() *natter.ErrorBody) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	msg, err := c.RequestWithContext(ctx, subject, data)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	if err := json.Unmarshal(msg.Data, out); err != nil {
		return fmt.Errorf("%s: reply %q: %w", subject, msg.Data, err)
	}
	if e := errOf(); e != nil {
		return &natter.Error{Code: e.Code, Message: e.Message}
	}
	return nil
}

// Join enters room under name; the reply says the name the room gave
// (made unique), who is there and the last seq.
func (c *Conn) Join(ctx context.Context, room, name string) (natter.JoinReply, error) {
	var r natter.JoinReply
	err := c.request(ctx, natter.UserSubject(room, natter.OpJoin, c.User.ID), natter.JoinRequest{Name: name}, &r, func() *natter.ErrorBody { return r.Error })
	return r, err
}

// Here renews the user's presence in room.
func (c *Conn) Here(ctx context.Context, room string) error {
	var r natter.Reply
	return c.request(ctx, natter.UserSubject(room, natter.OpHere, c.User.ID), struct{}{}, &r, func() *natter.ErrorBody { return r.Error })
}

// Leave leaves room.
func (c *Conn) Leave(ctx context.Context, room string) error {
	var r natter.Reply
	return c.request(ctx, natter.UserSubject(room, natter.OpLeave, c.User.ID), struct{}{}, &r, func() *natter.ErrorBody { return r.Error })
}

// Send signs and sends text to room with a new message id.
func (c *Conn) Send(ctx context.Context, room, text string) (natter.Ack, error) {
	return c.SendID(ctx, room, nuid.Next(), text)
}

// SendID sends text under the given message id: resending the same id is
// safe, the gateway answers with the first ack.
func (c *Conn) SendID(ctx context.Context, room, id, text string) (natter.Ack, error) {
	sig, err := c.User.Sign(room, id, text)
	if err != nil {
		return natter.Ack{}, err
	}
	return c.SendRaw(ctx, room, natter.SendRequest{ID: id, Text: text, Sig: sig})
}

// SendSealed encrypts text under the room key and sends it to the sealed
// room with a new message id.
func (c *Conn) SendSealed(ctx context.Context, room string, key sealed.Key, text string) (natter.Ack, error) {
	return c.SendSealedID(ctx, room, nuid.Next(), key, text)
}

// SendSealedID is SendSealed under the given message id. The text is
// checked as a text message's before it is sealed: the gateway cannot.
func (c *Conn) SendSealedID(ctx context.Context, room, id string, key sealed.Key, text string) (natter.Ack, error) {
	ct, err := sealed.Seal(key, room, c.User.ID, id, text)
	if err != nil {
		return natter.Ack{}, fmt.Errorf("seal message %s: %w", id, err)
	}
	sig, err := c.User.Sign(room, id, ct)
	if err != nil {
		return natter.Ack{}, fmt.Errorf("sign message %s: %w", id, err)
	}
	return c.SendRaw(ctx, room, natter.SendRequest{ID: id, CT: ct, Sig: sig})
}

// OpenSealed decrypts the text of a sealed room's entry with the room
// key, after checking the sender's signature of its ct. An entry that
// does not open is not to be shown as text.
func OpenSealed(key sealed.Key, e natter.Envelope) (string, error) {
	if e.CT == "" {
		return "", fmt.Errorf("entry %d of room %s has no ct", e.Seq, e.Room)
	}
	if err := VerifySig(e.From.ID, natter.SignedPayload(e.Room, e.ID, e.CT), e.Sig); err != nil {
		return "", fmt.Errorf("entry %d of room %s: %w", e.Seq, e.Room, err)
	}
	text, err := sealed.Open(key, e.Room, e.From.ID, e.ID, e.CT)
	if err != nil {
		return "", fmt.Errorf("entry %d of room %s: %w", e.Seq, e.Room, err)
	}
	return text, nil
}

// VerifySig checks sig, base64url without padding, of payload by the
// user key user, as a receiver checks an entry.
func VerifySig(user string, payload []byte, sig string) error {
	kp, err := nkeys.FromPublicKey(user)
	if err != nil {
		return fmt.Errorf("sender key: %w", err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	if err := kp.Verify(payload, raw); err != nil {
		return fmt.Errorf("signature does not verify: %w", err)
	}
	return nil
}

// SendRaw sends a request as given, for tests of what the gateway refuses.
func (c *Conn) SendRaw(ctx context.Context, room string, req any) (natter.Ack, error) {
	var a natter.Ack
	err := c.request(ctx, natter.UserSubject(room, natter.OpSend, c.User.ID), req, &a, func() *natter.ErrorBody { return a.Error })
	return a, err
}

// History reads entries of room after afterSeq (at most limit; 0 for the
// gateway's page size).
func (c *Conn) History(ctx context.Context, room string, afterSeq uint64, limit int) (natter.HistoryReply, error) {
	var r natter.HistoryReply
	err := c.request(ctx, natter.UserSubject(room, natter.OpHistory, c.User.ID), natter.HistoryRequest{AfterSeq: afterSeq, Limit: limit}, &r, func() *natter.ErrorBody { return r.Error })
	return r, err
}

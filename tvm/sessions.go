package tvm

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter"
)

// SessionTTL is the life of an HTTP session: short, and renewed by
// POST /api/v1/sessions/refresh.
const SessionTTL = 15 * time.Minute

// sessionInfo is the HKDF info of the session key: a key for this one use,
// derived from the TVM signing key, so every natter process of a cluster
// shares it without a new secret.
const sessionInfo = "natter session v1"

// sessionHeader is the only JOSE header sessions have: anything else, in
// particular another alg, is refused before the signature is looked at.
var sessionHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// sessionClaims are a session's JWT claims.
type sessionClaims struct {
	Subject  string `json:"sub"`
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
	Version  uint64 `json:"sv"`
}

// sessionKey derives the HS256 key of sessions from the signing key's seed.
func sessionKey(kp nkeys.KeyPair) ([]byte, error) {
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("signing key seed: %w", err)
	}
	key, err := hkdf.Key(sha256.New, seed, nil, sessionInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("derive session key: %w", err)
	}
	return key, nil
}

// SessionResponse answers a login or a refresh.
type SessionResponse struct {
	Session   string         `json:"session"`
	ExpiresAt time.Time      `json:"expires_at"`
	User      natter.Profile `json:"user"`
}

func (s *Server) newSession(a natter.Account) (SessionResponse, error) {
	now := time.Now()
	exp := now.Add(SessionTTL).Truncate(time.Second).UTC()
	claims, err := json.Marshal(sessionClaims{Subject: a.ID, IssuedAt: now.Unix(), Expires: exp.Unix(), Version: a.SessionVersion})
	if err != nil {
		return SessionResponse{}, &natter.Error{Code: natter.EInternal, Message: "could not make a session", Err: err}
	}
	signed := sessionHeader + "." + base64.RawURLEncoding.EncodeToString(claims)
	tok := signed + "." + base64.RawURLEncoding.EncodeToString(s.sessionMAC(signed))
	return SessionResponse{Session: tok, ExpiresAt: exp, User: a.Profile()}, nil
}

func (s *Server) sessionMAC(signed string) []byte {
	m := hmac.New(sha256.New, s.sessionKey)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

var errNoSession = natter.Errorf(natter.EUnauthorized, "not a valid session; log in with POST /api/v1/sessions")

// parseSession checks a session's signature and expiry and returns its
// claims.
func (s *Server) parseSession(tok string, now time.Time) (sessionClaims, error) {
	var cl sessionClaims
	header, rest, ok := strings.Cut(tok, ".")
	if !ok || header != sessionHeader {
		return cl, errNoSession
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return cl, errNoSession
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.sessionMAC(header+"."+payload)) {
		return cl, errNoSession
	}
	data, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(data, &cl) != nil || !natter.IsUserID(cl.Subject) {
		return cl, errNoSession
	}
	if now.Unix() >= cl.Expires {
		return cl, natter.Errorf(natter.EUnauthorized, "session expired at %s; log in again", time.Unix(cl.Expires, 0).UTC().Format(time.RFC3339))
	}
	return cl, nil
}

// sessionAccount returns the account of the session in the request's
// Authorization: Bearer header: signed by this natter, not expired, and of
// the account's current session version.
func (s *Server) sessionAccount(c echo.Context) (natter.Account, error) {
	tok, err := bearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
	if err != nil {
		return natter.Account{}, natter.Errorf(natter.EUnauthorized, "Authorization: Bearer <session> is required; log in with POST /api/v1/sessions")
	}
	cl, err := s.parseSession(tok, time.Now())
	if err != nil {
		return natter.Account{}, err
	}
	a, err := s.cfg.Users.UserByID(c.Request().Context(), cl.Subject)
	if natter.ErrorCode(err) == natter.ENotFound {
		return natter.Account{}, natter.Errorf(natter.EUnauthorized, "the account of this session no longer exists")
	} else if err != nil {
		return natter.Account{}, err
	}
	if a.SessionVersion != cl.Version {
		return natter.Account{}, natter.Errorf(natter.EUnauthorized, "session ended; log in again")
	}
	return a, nil
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	TOTP     string `json:"totp"`
}

// errBadLogin is every failed login: the same code and message whether the
// username, the password or the code was wrong.
var errBadLogin = natter.Errorf(natter.EInvalidCredentials, "wrong username, password or code")

func (s *Server) login(c echo.Context) error {
	var req loginRequest
	if err := decodeJSON(c.Request(), &req); err != nil {
		return err
	}
	switch {
	case req.Username == "":
		return natter.Errorf(natter.EMalformed, "username is required")
	case req.Password == "" && req.TOTP == "":
		return natter.Errorf(natter.EMalformed, "password is required (or totp alone, for an account that chose passwordless login)")
	}
	ctx := c.Request().Context()
	if err := s.logins.check(c, req.Username); err != nil {
		return err
	}
	a, err := s.cfg.Users.UserByName(ctx, req.Username)
	known := err == nil
	if err != nil && natter.ErrorCode(err) != natter.ENotFound {
		return err
	}
	if req.Password == "" {
		// Passwordless: only an account that chose it, with a good code.
		if !known || !a.TOTP.Enabled || !a.TOTP.Passwordless {
			return s.logins.failed(c, req.Username)
		}
	} else {
		ok, err := s.hasher.verify(ctx, req.Password, a.PasswordHash)
		if err != nil {
			return err
		}
		if !ok {
			return s.logins.failed(c, req.Username)
		}
		if a.TOTP.Enabled && req.TOTP == "" {
			return natter.Errorf(natter.ETOTPRequired, "this account has two-factor on: send the code from the authenticator app as totp")
		}
	}
	if a.TOTP.Enabled {
		a, err = s.useCode(ctx, a.ID, req.TOTP, nil)
		if natter.ErrorCode(err) == natter.EInvalidCode {
			return s.logins.failed(c, req.Username)
		} else if err != nil {
			return err
		}
	}
	resp, err := s.newSession(a)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, resp)
}

func (s *Server) refreshSession(c echo.Context) error {
	a, err := s.sessionAccount(c)
	if err != nil {
		return err
	}
	resp, err := s.newSession(a)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, resp)
}

// logout ends every session of the account.
func (s *Server) logout(c echo.Context) error {
	a, err := s.sessionAccount(c)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Users.UpdateUser(c.Request().Context(), a.ID, endSessions); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func endSessions(a *natter.Account) error {
	a.SessionVersion++
	return nil
}

// LoginLimits bound failed logins; zero fields take the defaults: 5 per
// username and 20 per address in 15 minutes.
type LoginLimits struct {
	PerUsername int
	PerAddress  int
	Window      time.Duration
}

func (l LoginLimits) withDefaults() LoginLimits {
	if l.PerUsername <= 0 {
		l.PerUsername = 5
	}
	if l.PerAddress <= 0 {
		l.PerAddress = 20
	}
	if l.Window <= 0 {
		l.Window = 15 * time.Minute
	}
	return l
}

// loginLimiter counts failed logins per username and per address in a
// sliding window, in this process's memory.
type loginLimiter struct {
	users, addrs *failures
}

func newLoginLimiter(l LoginLimits) *loginLimiter {
	l = l.withDefaults()
	return &loginLimiter{users: newFailures(l.PerUsername, l.Window), addrs: newFailures(l.PerAddress, l.Window)}
}

// check answers 429 rate_limited with Retry-After while the username or
// the address has had too many failures. The username is counted whether
// it exists or not, so the limit does not tell either.
func (l *loginLimiter) check(c echo.Context, username string) error {
	now := time.Now()
	wait := max(l.users.wait(strings.ToLower(username), now), l.addrs.wait(c.RealIP(), now))
	if wait <= 0 {
		return nil
	}
	secs := strconv.Itoa(int(math.Ceil(wait.Seconds())))
	c.Response().Header().Set("Retry-After", secs)
	return natter.Errorf(natter.ERateLimited, "too many failed logins; retry in %ss", secs)
}

// failed counts a failure and returns the error every failure answers.
func (l *loginLimiter) failed(c echo.Context, username string) error {
	now := time.Now()
	l.users.add(strings.ToLower(username), now)
	l.addrs.add(c.RealIP(), now)
	return errBadLogin
}

// failures holds the times of recent failures per key.
type failures struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	times  map[string][]time.Time
}

// sweepAt is how many keys make failures forget the expired ones at once,
// so that a flood of usernames cannot grow the map without bound.
const sweepAt = 10000

func newFailures(limit int, window time.Duration) *failures {
	return &failures{limit: limit, window: window, times: map[string][]time.Time{}}
}

// recent returns key's failures within the window, dropping older ones.
// Callers hold mu.
func (f *failures) recent(key string, now time.Time) []time.Time {
	ts := f.times[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= f.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(f.times, key)
	} else {
		f.times[key] = ts
	}
	return ts
}

// wait is how long until key may fail again; 0 or less: now.
func (f *failures) wait(key string, now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := f.recent(key, now)
	if len(ts) < f.limit {
		return 0
	}
	return ts[len(ts)-f.limit].Add(f.window).Sub(now)
}

func (f *failures) add(key string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.times) >= sweepAt {
		for k := range f.times {
			f.recent(k, now)
		}
	}
	ts := append(f.recent(key, now), now)
	// Only the last limit failures decide when key may try again.
	f.times[key] = ts[max(0, len(ts)-f.limit):]
}

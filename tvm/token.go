package tvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter"
)

type tokenRequest struct {
	PublicKey string   `json:"public_key"`
	Name      string   `json:"name"`
	Rooms     []string `json:"rooms"`
	// A pointer, so that 0 is refused rather than taken for absent.
	ExpiresIn *int64 `json:"expires_in"`
}

func (s *Server) token(c echo.Context) error {
	// A token for a registered account needs its session, checked first:
	// a bad session is the answer whatever the body says.
	var acct *natter.Account
	if s.cfg.Users != nil && c.Request().Header.Get(echo.HeaderAuthorization) != "" {
		a, err := s.sessionAccount(c)
		if err != nil {
			return err
		}
		acct = &a
	}
	var req tokenRequest
	if err := decodeJSON(c.Request(), &req); err != nil {
		return err
	}
	user, err := checkUserKey(req.PublicKey)
	if err != nil {
		return err
	}
	if err := s.perKey.allow(c, user); err != nil {
		return err
	}
	name, err := s.tokenName(c.Request().Context(), req.Name, acct)
	if err != nil {
		return err
	}
	rooms, err := checkRooms(req.Rooms)
	if err != nil {
		return err
	}
	life, err := s.lifetime(req.ExpiresIn)
	if err != nil {
		return err
	}
	if err := s.checkRoomsExist(c.Request().Context(), rooms); err != nil {
		return err
	}
	var tags []string
	if acct != nil {
		tags = append(tags, natter.UserTag(acct.ID))
	}
	tok, exp, err := s.issue(user, name, rooms, life, tags...)
	if err != nil {
		return err
	}
	if acct != nil {
		// Recorded before the token is handed out, so that the gateway
		// knows the key as registered from its first join.
		if err := s.cfg.Users.BindKey(c.Request().Context(), user, natter.KeyBinding{UserID: acct.ID, DisplayName: acct.DisplayName}); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, natter.TokenResponse{
		JWT:         tok,
		ExpiresAt:   exp,
		User:        natter.Member{ID: user, Name: name},
		Servers:     s.servers(c.Request()),
		InboxPrefix: natter.InboxPrefix(user),
	})
}

// friendlyTries bounds the random names tried for an anonymous token
// before one that no registered user has.
const friendlyTries = 8

// tokenName is the name a token is vended under. A registered account's
// is its display name, which a name in the body may only repeat. An
// anonymous one is the name asked for, or a random one, and never a
// registered display name.
func (s *Server) tokenName(ctx context.Context, asked string, acct *natter.Account) (string, error) {
	var name string
	if asked != "" {
		var err error
		if name, err = natter.CleanName(asked); err != nil {
			return "", err
		}
	}
	if acct != nil {
		if name != "" && natter.FoldName(name) != natter.FoldName(acct.DisplayName) {
			return "", natter.Errorf(natter.EInvalidName, "name must be your display name %s, or absent", quoteShort(acct.DisplayName))
		}
		return acct.DisplayName, nil
	}
	if s.cfg.Users == nil {
		if name == "" {
			name = friendlyName()
		}
		return name, nil
	}
	if name != "" {
		if _, taken, err := s.cfg.Users.DisplayNameOwner(ctx, name); err != nil {
			return "", err
		} else if taken {
			return "", natter.Errorf(natter.ENameTaken, "the name %s belongs to a registered user", quoteShort(name))
		}
		return name, nil
	}
	for range friendlyTries {
		name = friendlyName()
		if _, taken, err := s.cfg.Users.DisplayNameOwner(ctx, name); err != nil || !taken {
			return name, err
		}
	}
	return name, nil
}

// lifetime is the life of a token asked to expire in expiresIn seconds:
// the server's token lifetime when not asked, never longer.
func (s *Server) lifetime(expiresIn *int64) (time.Duration, error) {
	if expiresIn == nil {
		return s.cfg.TokenTTL, nil
	}
	most := int64(s.cfg.TokenTTL / time.Second)
	if *expiresIn < 1 || *expiresIn > most {
		return 0, natter.Errorf(natter.EInvalidExpiry, "expires_in must be whole seconds from 1 to %d (the token lifetime), got %d", most, *expiresIn)
	}
	return time.Duration(*expiresIn) * time.Second, nil
}

// issue signs a user JWT for user with the scoped key, valid for life. The
// JWT carries only the rooms as tags; the server expands the account's
// template with them.
func (s *Server) issue(user, name string, rooms []string, life time.Duration, tags ...string) (string, time.Time, error) {
	exp := time.Now().Add(life).Truncate(time.Second).UTC()
	uc := jwt.NewUserClaims(user)
	uc.Name = name
	uc.IssuerAccount = s.cfg.Account
	uc.Expires = exp.Unix()
	for _, r := range rooms {
		uc.Tags.Add(natter.RoomTag(r))
	}
	uc.Tags.Add(tags...)
	uc.SetScoped(true)
	tok, err := uc.Encode(s.cfg.SigningKey)
	if err != nil {
		return "", time.Time{}, &natter.Error{Code: natter.EInternal, Message: "could not sign the token", Err: err}
	}
	return tok, exp, nil
}

// servers lists the WebSocket URLs a client connects to.
func (s *Server) servers(r *http.Request) []string {
	if len(s.cfg.Servers) > 0 {
		return s.cfg.Servers
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		host = "localhost"
	}
	scheme := "ws://"
	if s.cfg.WSTLS {
		scheme = "wss://"
	}
	return []string{scheme + net.JoinHostPort(host, strconv.Itoa(s.cfg.WSPort))}
}

func checkUserKey(key string) (string, error) {
	switch {
	case key == "":
		return "", natter.Errorf(natter.EInvalidKey, "public_key is required")
	case natter.ValidUserKey(key):
		return key, nil
	case strings.HasPrefix(key, "S"):
		if _, err := nkeys.FromSeed([]byte(key)); err == nil {
			// The key is a secret now that it crossed the wire; say so.
			return "", natter.Errorf(natter.EInvalidKey, "public_key is a seed: send only the public key (U…) and keep the seed secret; this seed must be replaced")
		}
	case nkeys.IsValidPublicKey(key):
		return "", natter.Errorf(natter.EInvalidKey, "public_key is not a user key: it must start with U")
	}
	return "", natter.Errorf(natter.EInvalidKey, "public_key is not a valid nkey user public key")
}

func checkRooms(rooms []string) ([]string, error) {
	if len(rooms) > natter.MaxRoomsPerToken {
		return nil, natter.Errorf(natter.ETooManyRooms, "a token may name at most %d rooms, got %d", natter.MaxRoomsPerToken, len(rooms))
	}
	out := make([]string, 0, len(rooms))
	for i, r := range rooms {
		if !natter.ValidRoomID(r) {
			return nil, natter.Errorf(natter.EInvalidRoom, "rooms[%d] %s is not a room id: 1-64 of a-z, 0-9 and -, starting with a letter or digit", i, quoteShort(r))
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// quoteShort quotes s for an error message, cut to a readable length.
func quoteShort(s string) string {
	const n = 70
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return strconv.Quote(s)
}

// decodeJSON reads exactly one JSON object into v, with nothing unknown and
// nothing after it, and says precisely what was wrong.
func decodeJSON(r *http.Request, v any) error { return decodeBody(r, v, false) }

// decodeOptionalJSON is decodeJSON for a body that may also be empty, which
// leaves v as it is.
func decodeOptionalJSON(r *http.Request, v any) error { return decodeBody(r, v, true) }

func decodeBody(r *http.Request, v any, optional bool) error {
	// A body needs Content-Type: application/json. A page elsewhere can send
	// a body without one (or as text/plain) with no CORS preflight; refusing
	// it keeps such blind requests from using up a visitor's rate limit.
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" || r.ContentLength != 0 {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != echo.MIMEApplicationJSON {
			return natter.Errorf(natter.EUnsupportedType, "Content-Type must be application/json")
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if optional && err == io.EOF {
		return nil // nothing but whitespace
	}
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON object")
	} else if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return tooLarge(MaxBodyBytes)
	}
	return natter.Errorf(natter.EMalformed, "request body: %s", describeJSONError(err))
}

func describeJSONError(err error) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)
	}
	switch {
	case errors.Is(err, io.EOF):
		return "empty; a JSON object is required"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "JSON ends early"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return goKind
}

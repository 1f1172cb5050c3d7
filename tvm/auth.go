package tvm

import (
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/jwt/v2"

	"github.com/natterchat/natter"
)

// bearerUser returns who a request acts for: the subject of the natter
// token in its Authorization: Bearer header, or the registered account the
// token was vended to (its user:<id> tag). The token must be signed by
// this TVM's signing key for the chat account and not have expired; the
// signature is checked by decoding, so the tag is as trustworthy as the
// rest of the token.
func (s *Server) bearerUser(c echo.Context) (string, error) {
	uc, err := s.bearerClaims(c)
	if err != nil {
		return "", err
	}
	if id, ok := natter.UserOfTags(uc.Tags); ok {
		return id, nil
	}
	return uc.Subject, nil
}

// bearerClaims returns the claims of the natter token in a request's
// Authorization: Bearer header, checked as bearerUser checks them.
func (s *Server) bearerClaims(c echo.Context) (*jwt.UserClaims, error) {
	tok, err := bearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
	if err != nil {
		return nil, err
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return nil, &natter.Error{Code: natter.EUnauthorized, Message: "bearer token is not a valid natter token (a NATS user JWT from POST /api/v1/token)", Err: err}
	}
	if err := s.checkClaims(uc, time.Now()); err != nil {
		return nil, err
	}
	return uc, nil
}

// bearerToken extracts the token of an Authorization header.
func bearerToken(header string) (string, error) {
	if header == "" {
		return "", natter.Errorf(natter.EUnauthorized, "Authorization: Bearer <token> is required; get a token from POST /api/v1/token")
	}
	scheme, tok, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", natter.Errorf(natter.EUnauthorized, "Authorization must use the Bearer scheme with a natter token")
	}
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", natter.Errorf(natter.EUnauthorized, "Authorization: Bearer has no token")
	}
	return tok, nil
}

// checkClaims accepts only what this TVM vends: a user token signed by its
// signing key for the chat account, within its lifetime.
func (s *Server) checkClaims(uc *jwt.UserClaims, now time.Time) error {
	switch {
	case uc.Issuer != s.signer:
		return natter.Errorf(natter.EUnauthorized, "bearer token was not signed by this natter")
	case uc.IssuerAccount != s.cfg.Account:
		return natter.Errorf(natter.EUnauthorized, "bearer token is for another account")
	case !natter.ValidUserKey(uc.Subject):
		return natter.Errorf(natter.EUnauthorized, "bearer token's subject is not a user key")
	case uc.Expires == 0:
		// natter never vends a token without an expiry.
		return natter.Errorf(natter.EUnauthorized, "bearer token has no expiry")
	case now.Unix() >= uc.Expires:
		exp := time.Unix(uc.Expires, 0).UTC()
		return natter.Errorf(natter.EUnauthorized, "bearer token expired at %s; get a new one from POST /api/v1/token", exp.Format(time.RFC3339))
	case uc.NotBefore > now.Unix():
		return natter.Errorf(natter.EUnauthorized, "bearer token is not valid yet")
	}
	return nil
}

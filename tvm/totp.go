package tvm

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"image/png"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/natterchat/natter"
)

// TOTP parameters (RFC 6238 defaults, which authenticator apps expect).
const (
	totpIssuer = "natter"
	totpPeriod = 30
	totpDrift  = 1 // steps accepted either side of now
	qrSize     = 256
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// codeStep returns the time step at which code is secret's code, within
// totpDrift steps of now.
func codeStep(secret, code string, now time.Time) (int64, bool) {
	if len(code) != totpOpts.Digits.Length() || secret == "" {
		return 0, false
	}
	for d := -totpDrift; d <= totpDrift; d++ {
		t := now.Add(time.Duration(d*totpPeriod) * time.Second)
		want, err := totp.GenerateCodeCustom(secret, t, totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return t.Unix() / totpPeriod, true
		}
	}
	return 0, false
}

var errBadCode = natter.Errorf(natter.EInvalidCode, "wrong or already used code")

// useCode checks code against the account's TOTP secret and records its
// step, in one compare-and-set with then (when not nil), so that a code is
// good once even when two requests bring it at the same moment. A wrong or
// already used code is invalid_code.
func (s *Server) useCode(ctx context.Context, id, code string, then func(*natter.Account)) (natter.Account, error) {
	now := time.Now()
	return s.cfg.Users.UpdateUser(ctx, id, func(a *natter.Account) error {
		step, ok := codeStep(a.TOTP.Secret, code, now)
		if !ok || step <= a.TOTP.LastStep {
			return errBadCode
		}
		a.TOTP.LastStep = step
		if then != nil {
			then(a)
		}
		return nil
	})
}

type totpEnrolRequest struct {
	Passwordless bool `json:"passwordless"`
}

// TOTPEnrolment answers POST /api/v1/users/me/totp.
type TOTPEnrolment struct {
	Secret     string `json:"secret"`
	OtpauthURI string `json:"otpauth_uri"`
	QRPNG      string `json:"qr_png"` // base64
}

func (s *Server) enrolTOTP(c echo.Context) error {
	a, err := s.sessionAccount(c)
	if err != nil {
		return err
	}
	var req totpEnrolRequest
	if err := decodeOptionalJSON(c.Request(), &req); err != nil {
		return err
	}
	if a.TOTP.Enabled {
		return natter.Errorf(natter.EInvalidCode, "two-factor is on already; turn it off first (DELETE /api/v1/users/me/totp with a code)")
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: a.Username, Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return &natter.Error{Code: natter.EInternal, Message: "could not make a two-factor secret", Err: err}
	}
	img, err := key.Image(qrSize, qrSize)
	var buf bytes.Buffer
	if err == nil {
		err = png.Encode(&buf, img)
	}
	if err != nil {
		return &natter.Error{Code: natter.EInternal, Message: "could not draw the QR code", Err: err}
	}
	_, err = s.cfg.Users.UpdateUser(c.Request().Context(), a.ID, func(a *natter.Account) error {
		if a.TOTP.Enabled {
			return natter.Errorf(natter.EInvalidCode, "two-factor is on already")
		}
		// A new enrolment replaces an unconfirmed one.
		a.TOTP = natter.TOTP{Secret: key.Secret(), Passwordless: req.Passwordless}
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, TOTPEnrolment{Secret: key.Secret(), OtpauthURI: key.URL(), QRPNG: base64.StdEncoding.EncodeToString(buf.Bytes())})
}

type codeRequest struct {
	Code string `json:"code"`
}

func (s *Server) readCode(c echo.Context) (string, error) {
	var req codeRequest
	if err := decodeJSON(c.Request(), &req); err != nil {
		return "", err
	}
	if req.Code == "" {
		return "", natter.Errorf(natter.EMalformed, "code is required")
	}
	return req.Code, nil
}

// confirmTOTP turns two-factor on with a first good code. Like every
// two-factor change it ends the account's sessions.
func (s *Server) confirmTOTP(c echo.Context) error {
	a, err := s.sessionAccount(c)
	if err != nil {
		return err
	}
	code, err := s.readCode(c)
	if err != nil {
		return err
	}
	switch {
	case a.TOTP.Enabled:
		return natter.Errorf(natter.EInvalidCode, "two-factor is on already")
	case a.TOTP.Secret == "":
		return natter.Errorf(natter.EInvalidCode, "no enrolment to confirm; start one with POST /api/v1/users/me/totp")
	}
	a, err = s.useCode(c.Request().Context(), a.ID, code, func(a *natter.Account) {
		a.TOTP.Enabled = true
		a.SessionVersion++
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a.Profile())
}

// disableTOTP turns two-factor off with a current code.
func (s *Server) disableTOTP(c echo.Context) error {
	a, err := s.sessionAccount(c)
	if err != nil {
		return err
	}
	code, err := s.readCode(c)
	if err != nil {
		return err
	}
	if !a.TOTP.Enabled {
		return natter.Errorf(natter.EInvalidCode, "two-factor is not on")
	}
	a, err = s.useCode(c.Request().Context(), a.ID, code, func(a *natter.Account) {
		a.TOTP = natter.TOTP{}
		a.SessionVersion++
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a.Profile())
}

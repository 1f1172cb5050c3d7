package tvm

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/natterchat/natter"
)

// UserStore is what the TVM needs to keep registered accounts; the gateway
// provides it. Errors carry natter codes: not_found, username_taken,
// name_taken, unavailable.
type UserStore interface {
	// CreateUser stores a new account; of two for one username exactly
	// one succeeds, the other is username_taken.
	CreateUser(ctx context.Context, a natter.Account) error
	UserByID(ctx context.Context, id string) (natter.Account, error)
	UserByName(ctx context.Context, username string) (natter.Account, error)
	// UpdateUser applies change to the stored account with a
	// compare-and-set, calling it again on the fresh account when another
	// write came first; a changed display name is reserved (name_taken).
	UpdateUser(ctx context.Context, id string, change func(*natter.Account) error) (natter.Account, error)
	// DeleteUser removes the account and its token keys and frees its
	// username and display name.
	DeleteUser(ctx context.Context, id string) error
	// BindKey records the account a token's key was vended to.
	BindKey(ctx context.Context, key string, b natter.KeyBinding) error
	// DisplayNameOwner returns the account whose display name folds to the
	// same as name.
	DisplayNameOwner(ctx context.Context, name string) (string, bool, error)
}

func (s *Server) accountRoutes(e *echo.Echo, api []echo.MiddlewareFunc) {
	e.POST("/api/v1/users", s.signup, api...)
	e.GET("/api/v1/users/me", s.me, api...)
	e.PATCH("/api/v1/users/me", s.patchMe, api...)
	e.DELETE("/api/v1/users/me", s.deleteMe, api...)
	e.GET("/api/v1/users/:id", s.publicProfile, api...)
	e.POST("/api/v1/users/me/totp", s.enrolTOTP, api...)
	e.POST("/api/v1/users/me/totp/confirm", s.confirmTOTP, api...)
	e.DELETE("/api/v1/users/me/totp", s.disableTOTP, api...)
	e.POST("/api/v1/sessions", s.login, api...)
	e.POST("/api/v1/sessions/refresh", s.refreshSession, api...)
	e.DELETE("/api/v1/sessions", s.logout, api...)
}

type signupRequest struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
}

func checkUsername(u string) error {
	if !natter.ValidUsername(u) {
		return natter.Errorf(natter.EInvalidUsername, "username must be %d-%d of a-z, 0-9 and _, got %s", natter.MinUsernameLen, natter.MaxUsernameLen, quoteShort(u))
	}
	return nil
}

// cleanDisplayName checks a display name as any name, and refuses markup:
// a registered name is shown with a mark, everywhere.
func cleanDisplayName(name string) (string, error) {
	name, err := natter.CleanName(name)
	if err != nil {
		return "", &natter.Error{Code: natter.EInvalidName, Message: "display_name: " + natter.ErrorMessage(err), Err: err}
	}
	return name, nil
}

func (s *Server) signup(c echo.Context) error {
	var req signupRequest
	if err := decodeJSON(c.Request(), &req); err != nil {
		return err
	}
	if err := checkUsername(req.Username); err != nil {
		return err
	}
	if err := checkPassword(req.Password); err != nil {
		return err
	}
	name, err := cleanDisplayName(req.DisplayName)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	hash, err := s.hasher.hash(ctx, req.Password)
	if err != nil {
		return err
	}
	a := natter.Account{
		ID:           natter.NewUserID(),
		Username:     req.Username,
		DisplayName:  name,
		CreatedAt:    time.Now().UTC().Truncate(time.Second),
		PasswordHash: hash,
	}
	if err := s.cfg.Users.CreateUser(ctx, a); err != nil {
		return err
	}
	s.log.Info("account created", "user", a.ID)
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/users/"+a.ID)
	return c.JSON(http.StatusCreated, a.Profile())
}

func (s *Server) me(c echo.Context) error {
	a, err := s.sessionAccount(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a.Profile())
}

func (s *Server) publicProfile(c echo.Context) error {
	id := c.Param("id")
	if !natter.IsUserID(id) {
		return natter.Errorf(natter.ENotFound, "no user %s", quoteShort(id))
	}
	a, err := s.cfg.Users.UserByID(c.Request().Context(), id)
	if natter.ErrorCode(err) == natter.ENotFound {
		return natter.Errorf(natter.ENotFound, "no user %s", quoteShort(id))
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a.Public())
}

type patchRequest struct {
	DisplayName *string `json:"display_name"`
	Password    *string `json:"password"`
	OldPassword *string `json:"old_password"`
}

func (s *Server) patchMe(c echo.Context) error {
	a, err := s.sessionAccount(c)
	if err != nil {
		return err
	}
	var req patchRequest
	if err := decodeJSON(c.Request(), &req); err != nil {
		return err
	}
	switch {
	case req.Password == nil && req.OldPassword != nil:
		return natter.Errorf(natter.EMalformed, "old_password goes with a new password")
	case req.DisplayName == nil && req.Password == nil:
		return natter.Errorf(natter.EMalformed, "nothing to change: give display_name or password")
	case req.Password != nil && req.OldPassword == nil:
		return natter.Errorf(natter.EMalformed, "old_password is required to change the password")
	}
	var name string
	if req.DisplayName != nil {
		if name, err = cleanDisplayName(*req.DisplayName); err != nil {
			return err
		}
	}
	ctx := c.Request().Context()
	var hash string
	if req.Password != nil {
		if err := checkPassword(*req.Password); err != nil {
			return err
		}
		if err := s.limits(c, a.Username); err != nil {
			return err
		}
		ok, err := s.hasher.verify(ctx, *req.OldPassword, a.PasswordHash)
		if err != nil {
			return err
		}
		if !ok {
			return s.logins.failed(c, a.Username)
		}
		if hash, err = s.hasher.hash(ctx, *req.Password); err != nil {
			return err
		}
	}
	a, err = s.cfg.Users.UpdateUser(ctx, a.ID, func(a *natter.Account) error {
		if name != "" {
			a.DisplayName = name
		}
		if hash != "" {
			a.PasswordHash = hash
			a.SessionVersion++ // a new password ends every session
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a.Profile())
}

// limits is the failed-login limit, also for the routes that check a
// password or a code of a signed-in account: a stolen session must not
// make guessing the password cheaper.
func (s *Server) limits(c echo.Context, username string) error {
	return s.logins.check(c, username)
}

type deleteRequest struct {
	Password string `json:"password"`
	TOTP     string `json:"totp"`
}

func (s *Server) deleteMe(c echo.Context) error {
	a, err := s.sessionAccount(c)
	if err != nil {
		return err
	}
	var req deleteRequest
	if err := decodeJSON(c.Request(), &req); err != nil {
		return err
	}
	passwordless := a.TOTP.Enabled && a.TOTP.Passwordless
	switch {
	case req.Password == "" && req.TOTP == "":
		return natter.Errorf(natter.EMalformed, "password is required (or totp, for a passwordless account)")
	case req.Password == "" && !passwordless:
		return natter.Errorf(natter.EMalformed, "password is required")
	}
	if err := s.limits(c, a.Username); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if req.Password != "" {
		ok, err := s.hasher.verify(ctx, req.Password, a.PasswordHash)
		if err != nil {
			return err
		}
		if !ok {
			return s.logins.failed(c, a.Username)
		}
	} else if _, err := s.useCode(ctx, a.ID, req.TOTP, nil); natter.ErrorCode(err) == natter.EInvalidCode {
		return s.logins.failed(c, a.Username)
	} else if err != nil {
		return err
	}
	if err := s.cfg.Users.DeleteUser(ctx, a.ID); err != nil {
		return err
	}
	s.log.Info("account deleted", "user", a.ID)
	return c.NoContent(http.StatusNoContent)
}

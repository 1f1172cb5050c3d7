package tvm

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/natterchat/natter"
)

// statusOf maps every error code to its HTTP status. It is the only place
// that knows both.
var statusOf = map[string]int{
	natter.EMalformed:          http.StatusBadRequest,
	natter.EInvalidKey:         http.StatusBadRequest,
	natter.EInvalidName:        http.StatusBadRequest,
	natter.EInvalidRoom:        http.StatusBadRequest,
	natter.ETooManyRooms:       http.StatusBadRequest,
	natter.EInvalidExpiry:      http.StatusBadRequest,
	natter.EUnauthorized:       http.StatusUnauthorized,
	natter.EUnknownRoom:        http.StatusNotFound,
	natter.ENotFound:           http.StatusNotFound,
	natter.EMethod:             http.StatusMethodNotAllowed,
	natter.ETooLarge:           http.StatusRequestEntityTooLarge,
	natter.EUnsupportedType:    http.StatusUnsupportedMediaType,
	natter.ERateLimited:        http.StatusTooManyRequests,
	natter.ERoomLimit:          http.StatusTooManyRequests,
	natter.ERoomClosed:         http.StatusGone,
	natter.ENotJoined:          http.StatusConflict,
	natter.EInvalidUTF8:        http.StatusBadRequest,
	natter.EEmpty:              http.StatusBadRequest,
	natter.ETooLong:            http.StatusBadRequest,
	natter.EControlChars:       http.StatusBadRequest,
	natter.EBadSignature:       http.StatusBadRequest,
	natter.EInvalidUsername:    http.StatusBadRequest,
	natter.EWeakPassword:       http.StatusBadRequest,
	natter.EUsernameTaken:      http.StatusConflict,
	natter.ENameTaken:          http.StatusConflict,
	natter.EInvalidCredentials: http.StatusUnauthorized,
	natter.ETOTPRequired:       http.StatusUnauthorized,
	natter.EInvalidCode:        http.StatusBadRequest,
	natter.ECorruptImage:       http.StatusBadRequest,
	natter.EUnknownUpload:      http.StatusBadRequest,
	natter.EForbidden:          http.StatusForbidden,
	natter.ESealedRoom:         http.StatusBadRequest,
	natter.EInternal:           http.StatusInternalServerError,
	natter.EUnavailable:        http.StatusServiceUnavailable,
}

// fromEcho turns echo's own errors (unknown route, wrong method) into ours.
var fromEcho = map[int]*natter.Error{
	http.StatusNotFound:         natter.Errorf(natter.ENotFound, "no such endpoint"),
	http.StatusMethodNotAllowed: natter.Errorf(natter.EMethod, "method not allowed on this endpoint"),
}

// ours is err with echo's own errors turned into ours, so the code a
// client reads and the code counted in the metrics are the same.
func ours(err error) error {
	if he, ok := errors.AsType[*echo.HTTPError](err); ok {
		if e, ok := fromEcho[he.Code]; ok {
			return e
		}
	}
	return err
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// errorHandler writes every error as {"error": {"code", "message"}}. Internal
// causes are logged, never sent.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		err = ours(err)
		code := natter.ErrorCode(err)
		status, ok := statusOf[code]
		if !ok {
			status = http.StatusInternalServerError
		}
		if status >= 500 {
			log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "code", code, "err", err)
		}
		if status == http.StatusUnauthorized {
			// RFC 9110: a 401 names the scheme that would be accepted.
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="natter"`)
		}
		var body errorBody
		body.Error.Code, body.Error.Message = code, natter.ErrorMessage(err)
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(status)
		} else {
			err = c.JSON(status, body)
		}
		if err != nil {
			log.Warn("write error response", "err", err)
		}
	}
}

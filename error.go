package natter

import (
	"errors"
	"fmt"
)

// Error codes that clients see. They are part of the wire contract: stable
// strings a client can switch on. The message beside them is for people.
const (
	EMalformed       = "malformed"          // body is not the JSON expected
	EInvalidKey      = "invalid_key"        // not an nkey user public key
	EInvalidName     = "invalid_name"       // display name refused
	EInvalidRoom     = "invalid_room"       // room id does not match the scheme
	ETooManyRooms    = "too_many_rooms"     // more rooms than one token may hold
	EInvalidExpiry   = "invalid_expires_in" // a token lifetime out of range
	EUnknownRoom     = "unknown_room"       // no such room
	ENotFound        = "not_found"          // no such resource
	EMethod          = "method_not_allowed"
	ETooLarge        = "too_large"        // request body too large
	EUnsupportedType = "unsupported_type" // wrong content type
	ERateLimited     = "rate_limited"     // slow down
	EUnauthorized    = "unauthorized"     // missing or bad credentials
	EUnavailable     = "unavailable"      // a dependency (NATS, JetStream) is down
	EInternal        = "internal"         // a bug or an outage; details only in logs

	EInvalidUsername    = "invalid_username"    // not 3–32 of a-z, 0-9 and _
	EWeakPassword       = "weak_password"       // too short or too common
	EUsernameTaken      = "username_taken"      // another account has the username
	ENameTaken          = "name_taken"          // a registered account has the display name
	EInvalidCredentials = "invalid_credentials" // wrong username, password or code: never says which
	ETOTPRequired       = "totp_required"       // the password was right; the account needs a code too
	EInvalidCode        = "invalid_code"        // a two-factor code that does not verify

	ECorruptImage  = "corrupt_image"  // an image that is truncated, broken or more than one file
	EUnknownUpload = "unknown_upload" // an image message's upload does not exist or is another room's
	EForbidden     = "forbidden"      // the credentials are good but not for this resource
	ESealedRoom    = "sealed_room"    // text or an image in a sealed room, or ct in an ordinary one
)

// Error is an error with a stable code and a message safe to show a client.
// Err, when set, is the internal cause: logged, never shown.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted client message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, or EInternal for errors that carry none.
func ErrorCode(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the client message of err; errors without one get a
// generic text so internal details never leak.
func ErrorMessage(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Message
	}
	return "internal error"
}

package tvm

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/images"
)

// UploadStore is what the TVM needs to keep uploaded images; the gateway
// provides it. Errors carry natter codes: not_found (no such upload, or
// its room is gone), unknown_room, room_closed, unavailable.
type UploadStore interface {
	// PutUpload stores data as upload u of an open room and returns it
	// with its size, sha256 and time.
	PutUpload(ctx context.Context, u natter.Upload, data []byte) (natter.Upload, error)
	// Upload returns an upload of an open room.
	Upload(ctx context.Context, id string) (natter.Upload, error)
	// OpenUpload is Upload with a reader of its bytes, which the caller
	// closes.
	OpenUpload(ctx context.Context, id string) (natter.Upload, io.ReadCloser, error)
}

// Defaults of the upload limits.
const (
	DefaultUploadMaxBytes = 5 << 20
	DefaultUploadRate     = 10 // a minute, per user key
)

// multipartOverhead is what a multipart body may hold beyond its file:
// the boundaries and the part's headers.
const multipartOverhead = 16 << 10

// UploadLinkTTL is the life of a signed upload link.
const UploadLinkTTL = 10 * time.Minute

// uploadLinkInfo is the HKDF info of the upload link key, derived from the
// TVM signing key like the session key, for this one use.
const uploadLinkInfo = "natter upload link v1"

// uploadCacheControl lets a browser keep an image for an hour: an
// upload's bytes never change, and only its holder's own cache keeps it.
const uploadCacheControl = "private, max-age=3600, immutable"

func uploadLinkKey(kp nkeys.KeyPair) ([]byte, error) {
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("signing key seed: %w", err)
	}
	key, err := hkdf.Key(sha256.New, seed, nil, uploadLinkInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("derive upload link key: %w", err)
	}
	return key, nil
}

func (s *Server) uploadRoutes(e *echo.Echo) {
	// The upload has a body limit of its own; the JSON routes' 16 KiB
	// would refuse every image.
	post := []echo.MiddlewareFunc{limitBody(s.cfg.UploadMaxBytes + multipartOverhead)}
	if s.cfg.Rate > 0 {
		post = append(post, s.rateLimit())
	}
	e.POST("/api/v1/rooms/:id/uploads", s.upload, post...)
	// Reading is not limited per address: a room's page asks for each of
	// its images at once, and each request needs a token or a link for
	// the image's room.
	get := []echo.MiddlewareFunc{limitBody(MaxBodyBytes)}
	e.GET("/api/v1/uploads/:id", s.fetchUpload, get...)
	e.GET("/api/v1/uploads/:id/link", s.uploadLink, get...)
}

// roomOfToken refuses a token whose rooms do not include room.
func roomOfToken(uc *jwt.UserClaims, room string) error {
	if !slices.Contains(natter.RoomsFromTags(uc.Tags), room) {
		return natter.Errorf(natter.EForbidden, "this token is not for room %s; get one that names it from POST /api/v1/token", quoteShort(room))
	}
	return nil
}

// upload stores an image sent as the one part, named file, of a
// multipart body, for a member of the room.
func (s *Server) upload(c echo.Context) error {
	uc, err := s.bearerClaims(c)
	if err != nil {
		return err
	}
	room := c.Param("id")
	if !natter.ValidRoomID(room) {
		return natter.Errorf(natter.EInvalidRoom, "%s is not a room id: 1-64 of a-z, 0-9 and -, starting with a letter or digit", quoteShort(room))
	}
	if err := roomOfToken(uc, room); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if r, err := s.cfg.Rooms.Room(ctx, room); err != nil {
		return err
	} else if r.Sealed {
		// The image would be stored and served in the clear, beside
		// messages that the server cannot read.
		return natter.Errorf(natter.ESealedRoom, "room %s is sealed: images are not encrypted, so they cannot be sent there", room)
	}
	if err := s.uploads.allow(c, uc.Subject); err != nil {
		return err
	}
	data, err := s.readUploadFile(c.Request())
	if err != nil {
		return err
	}
	info, data, err := images.Check(ctx, data)
	if err != nil {
		return err
	}
	up, err := s.cfg.Uploads.PutUpload(ctx, natter.Upload{
		ID: natter.NewUploadID(), Room: room, Uploader: uc.Subject,
		Type: info.Type, Width: info.Width, Height: info.Height,
	}, data)
	if err != nil {
		return err
	}
	s.log.Info("upload stored", "room", room, "upload", up.ID, "type", up.Type, "size", up.Size, "width", up.Width, "height", up.Height)
	url := natter.UploadPath(up.ID)
	c.Response().Header().Set(echo.HeaderLocation, url)
	return c.JSON(http.StatusCreated, natter.UploadResponse{
		UploadID: up.ID, URL: url, Type: up.Type, Width: up.Width, Height: up.Height, Size: up.Size,
	})
}

// readUploadFile reads the one part, named file, of a multipart body, and
// refuses it as soon as it is longer than the limit.
func (s *Server) readUploadFile(r *http.Request) ([]byte, error) {
	max := s.cfg.UploadMaxBytes
	tooLarge := func() error {
		return natter.Errorf(natter.ETooLarge, "the file is larger than %d bytes", max)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, natter.Errorf(natter.EUnsupportedType, "the body must be multipart/form-data with one part named file")
	}
	part, err := mr.NextPart()
	if isMaxBytes(err) {
		return nil, tooLarge()
	} else if err != nil {
		return nil, &natter.Error{Code: natter.EMalformed, Message: "the body must be multipart/form-data with one part named file", Err: err}
	}
	if part.FormName() != "file" {
		return nil, natter.Errorf(natter.EMalformed, "the part must be named file, not %s", quoteShort(part.FormName()))
	}
	data, err := io.ReadAll(io.LimitReader(part, max+1))
	switch {
	case isMaxBytes(err):
		return nil, tooLarge()
	case err != nil:
		return nil, &natter.Error{Code: natter.EMalformed, Message: "the body ended before the file did", Err: err}
	case int64(len(data)) > max:
		return nil, tooLarge()
	}
	if _, err := mr.NextPart(); isMaxBytes(err) {
		return nil, tooLarge()
	} else if !errors.Is(err, io.EOF) {
		return nil, natter.Errorf(natter.EMalformed, "the body must have exactly one part, named file")
	}
	return data, nil
}

func isMaxBytes(err error) bool {
	_, ok := errors.AsType[*http.MaxBytesError](err)
	return ok
}

// fetchUpload serves an upload's bytes to a holder of a token for its
// room, or of a signed link to it. A matching If-None-Match is answered
// 304 before the bytes are read.
func (s *Server) fetchUpload(c echo.Context) error {
	id := c.Param("id")
	if !natter.ValidUploadID(id) {
		return natter.Errorf(natter.ENotFound, "no upload %s", quoteShort(id))
	}
	ctx := c.Request().Context()
	q := c.QueryParams()
	// The link or the token is checked before the store is asked anything.
	var uc *jwt.UserClaims
	var err error
	if q.Has("sig") || q.Has("exp") {
		err = s.checkUploadLink(id, q.Get("exp"), q.Get("sig"), time.Now())
	} else {
		uc, err = s.bearerClaims(c)
	}
	if err != nil {
		return err
	}
	up, err := s.cfg.Uploads.Upload(ctx, id)
	if err != nil {
		return err
	}
	if uc != nil {
		if err := roomOfToken(uc, up.Room); err != nil {
			return err
		}
	}
	h := c.Response().Header()
	etag := `"` + up.SHA256 + `"`
	h.Set(echo.HeaderContentType, up.Type)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'")
	h.Set("Cache-Control", uploadCacheControl)
	h.Set("ETag", etag)
	h.Set("Content-Disposition", "inline")
	if etagMatches(c.Request().Header.Get("If-None-Match"), etag) {
		h.Del(echo.HeaderContentType)
		return c.NoContent(http.StatusNotModified)
	}
	up, r, err := s.cfg.Uploads.OpenUpload(ctx, id)
	if err != nil {
		h.Del("ETag")
		h.Del("Cache-Control")
		return err
	}
	defer r.Close()
	h.Set(echo.HeaderContentLength, strconv.FormatInt(up.Size, 10))
	c.Response().WriteHeader(http.StatusOK)
	if _, err := io.Copy(c.Response(), r); err != nil {
		// The status is sent: all that is left is to cut the body short.
		s.log.Warn("serve upload", "upload", id, "err", err)
	}
	return nil
}

// etagMatches reports whether an If-None-Match header names etag.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// uploadLink signs a link to an upload for a holder of a token for its
// room, valid UploadLinkTTL.
func (s *Server) uploadLink(c echo.Context) error {
	uc, err := s.bearerClaims(c)
	if err != nil {
		return err
	}
	id := c.Param("id")
	if !natter.ValidUploadID(id) {
		return natter.Errorf(natter.ENotFound, "no upload %s", quoteShort(id))
	}
	up, err := s.cfg.Uploads.Upload(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if err := roomOfToken(uc, up.Room); err != nil {
		return err
	}
	exp := time.Now().Add(UploadLinkTTL).Truncate(time.Second)
	ts := strconv.FormatInt(exp.Unix(), 10)
	url := natter.UploadPath(id) + "?exp=" + ts + "&sig=" + s.uploadLinkSig(id, ts)
	return c.JSON(http.StatusOK, natter.UploadLink{URL: url, ExpiresAt: exp.UTC()})
}

func (s *Server) uploadLinkSig(id, exp string) string {
	m := hmac.New(sha256.New, s.linkKey)
	m.Write([]byte("natter/v1/upload-link\n" + id + "\n" + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkUploadLink accepts a link this TVM signed for id that has not
// expired.
func (s *Server) checkUploadLink(id, exp, sig string, now time.Time) error {
	ts, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return natter.Errorf(natter.EForbidden, "the link is not valid; ask GET %s/link for a new one", natter.UploadPath(id))
	}
	if !hmac.Equal([]byte(sig), []byte(s.uploadLinkSig(id, exp))) {
		return natter.Errorf(natter.EForbidden, "the link is not valid; ask GET %s/link for a new one", natter.UploadPath(id))
	}
	if now.Unix() >= ts {
		return natter.Errorf(natter.EForbidden, "the link expired; ask GET %s/link for a new one", natter.UploadPath(id))
	}
	return nil
}

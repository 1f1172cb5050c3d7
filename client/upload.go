package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/nats-io/nuid"

	"github.com/natterchat/natter"
)

// SignImage signs an image message for room under id, pointing at upload,
// with an optional caption.
func (u *Identity) SignImage(room, id, upload, caption string) (string, error) {
	sig, err := u.Key.Sign(natter.SignedImagePayload(room, id, upload, caption))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sig), nil
}

// SendImage sends an image message showing upload, an upload of room,
// with an optional caption.
func (c *Conn) SendImage(ctx context.Context, room, upload, caption string) (natter.Ack, error) {
	id := nuid.Next()
	sig, err := c.User.SignImage(room, id, upload, caption)
	if err != nil {
		return natter.Ack{}, err
	}
	return c.SendRaw(ctx, room, natter.SendRequest{ID: id, Type: natter.TypeImage, Upload: upload, Text: caption, Sig: sig})
}

// Upload sends an image to room as the bearer of tok, as the file name;
// the TVM decides its type from its bytes.
func (a *API) Upload(ctx context.Context, tok *Token, room, name string, data []byte) (natter.UploadResponse, error) {
	var up natter.UploadResponse
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		return up, err
	}
	if _, err := fw.Write(data); err != nil {
		return up, err
	}
	if err := mw.Close(); err != nil {
		return up, err
	}
	url := strings.TrimRight(a.BaseURL, "/") + "/api/v1/rooms/" + room + "/uploads"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &body)
	if err != nil {
		return up, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok.JWT)
	resp, err := roundTrip(a.HTTP, req)
	if err != nil {
		return up, err
	}
	defer resp.Body.Close()
	return up, json.NewDecoder(resp.Body).Decode(&up)
}

// UploadLink asks for a short-lived signed link to an upload, for <img>
// tags that cannot send a token.
func (a *API) UploadLink(ctx context.Context, tok *Token, upload string) (natter.UploadLink, error) {
	var l natter.UploadLink
	err := a.do(ctx, http.MethodGet, natter.UploadPath(upload)+"/link", tok.JWT, nil, &l)
	return l, err
}

// FetchUpload reads an upload's bytes with tok.
func (a *API) FetchUpload(ctx context.Context, tok *Token, upload string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(a.BaseURL, "/")+natter.UploadPath(upload), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok.JWT)
	resp, err := roundTrip(a.HTTP, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

package tvm_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway"
	"github.com/natterchat/natter/gateway/gatewaytest"
	"github.com/natterchat/natter/images/imagestest"
	"github.com/natterchat/natter/tvm"
)

// uploadsFixture is a gateway and a TVM serving uploads, over HTTP.
type uploadsFixture struct {
	url string
	api *client.API
	gw  *gateway.Gateway
	tvm *tvm.Server
}

func newUploads(t *testing.T, mod func(*tvm.Config)) uploadsFixture {
	t.Helper()
	gw := gatewaytest.RunGateway(t)
	cfg := tvm.Config{Account: gw.Account(), SigningKey: gw.SigningKey(), Rooms: gw, Uploads: gw.Uploads(), TokenTTL: time.Hour, WSPort: 8081}
	if mod != nil {
		mod(&cfg)
	}
	s := tvm.New(cfg)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return uploadsFixture{url: srv.URL, api: &client.API{BaseURL: srv.URL}, gw: gw, tvm: s}
}

// member makes a user with a room of its own and a token for it.
func (f uploadsFixture) member(t *testing.T) (room string, tok *client.Token) {
	t.Helper()
	u, err := client.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	tok, err = f.api.Token(t.Context(), u, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.api.CreateRoom(t.Context(), tok, "")
	if err != nil {
		t.Fatal(err)
	}
	if tok, err = f.api.Token(t.Context(), u, "", r.ID); err != nil {
		t.Fatal(err)
	}
	return r.ID, tok
}

// get fetches path with an optional bearer token and extra headers.
func (f uploadsFixture) get(t *testing.T, path, bearer string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct{ Error client.APIError }
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error.Code
}

func apiCode(err error) (int, string) {
	var e *client.APIError
	if errors.As(err, &e) {
		return e.Status, e.Code
	}
	return 0, ""
}

// TestUploadEachTypeAndFetch: every accepted type goes up under any name
// and comes back, with a token and with a signed link, byte for byte and
// with the headers of docs/uploads.md.
func TestUploadEachTypeAndFetch(t *testing.T) {
	f := newUploads(t, func(c *tvm.Config) { c.UploadRate = 100 })
	room, tok := f.member(t)
	cases := []struct {
		name, file, typ string
		data            []byte
		w, h            int
	}{
		{"png", "a.png", "image/png", imagestest.PNG(t, 64, 48), 64, 48},
		{"jpeg", "a.jpeg", "image/jpeg", imagestest.JPEG(t, 33, 17), 33, 17},
		{"gif", "a.gif", "image/gif", imagestest.GIF(t, 10, 20), 10, 20},
		{"webp", "a.webp", "image/webp", imagestest.WebP(t, true), 1, 1},
		{"png named .jpg", "photo.jpg", "image/png", imagestest.PNG(t, 5, 7), 5, 7},
		{"png without a name", "", "image/png", imagestest.PNG(t, 3, 3), 3, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up, err := f.api.Upload(t.Context(), tok, room, tc.file, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if !natter.ValidUploadID(up.UploadID) || up.URL != "/api/v1/uploads/"+up.UploadID || up.Type != tc.typ ||
				up.Width != tc.w || up.Height != tc.h || up.Size != int64(len(tc.data)) {
				t.Fatalf("answer %+v", up)
			}
			sum := sha256.Sum256(tc.data)
			etag := `"` + hex.EncodeToString(sum[:]) + `"`
			want := map[string]string{
				"Content-Type":            tc.typ,
				"X-Content-Type-Options":  "nosniff",
				"Content-Security-Policy": "default-src 'none'",
				"Cache-Control":           "private, max-age=3600, immutable",
				"Etag":                    etag,
				"Content-Disposition":     "inline",
			}
			check := func(how string, resp *http.Response, body []byte) {
				t.Helper()
				if resp.StatusCode != http.StatusOK || !bytes.Equal(body, tc.data) {
					t.Fatalf("%s: status %d, %d bytes back of %d", how, resp.StatusCode, len(body), len(tc.data))
				}
				for k, v := range want {
					if got := resp.Header.Get(k); got != v {
						t.Errorf("%s: %s: %q, want %q", how, k, got, v)
					}
				}
				if resp.ContentLength != int64(len(tc.data)) {
					t.Errorf("%s: Content-Length %d", how, resp.ContentLength)
				}
			}
			resp, body := f.get(t, up.URL, tok.JWT)
			check("bearer", resp, body)

			resp, body = f.get(t, up.URL, tok.JWT, "If-None-Match", etag)
			if resp.StatusCode != http.StatusNotModified || len(body) != 0 || resp.Header.Get("ETag") != etag {
				t.Fatalf("If-None-Match: status %d, ETag %q, %d bytes", resp.StatusCode, resp.Header.Get("ETag"), len(body))
			}
			resp, _ = f.get(t, up.URL, tok.JWT, "If-None-Match", `"other"`)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("If-None-Match of another tag: status %d", resp.StatusCode)
			}

			link, err := f.api.UploadLink(t.Context(), tok, up.UploadID)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Until(link.ExpiresAt); d < 9*time.Minute || d > 10*time.Minute {
				t.Fatalf("link expires in %s", d)
			}
			resp, body = f.get(t, link.URL, "")
			check("link", resp, body)
		})
	}
}

// TestUploadStoredWithMetadataAndWithoutExif reads the stored object back:
// the room, the uploader's key, the type, the size and the sha256 of the
// stored bytes, from which the JPEG's metadata is gone.
func TestUploadStoredWithMetadataAndWithoutExif(t *testing.T) {
	f := newUploads(t, nil)
	room, tok := f.member(t)
	const gps = "GPSLatitude 48.8584 N GPSLongitude 2.2945 E"
	jpg := imagestest.JPEG(t, 20, 10)
	up, err := f.api.Upload(t.Context(), tok, room, "holiday.jpg", imagestest.WithExif(jpg, gps))
	if err != nil {
		t.Fatal(err)
	}
	stored, r, err := f.gw.Uploads().OpenUpload(t.Context(), up.UploadID)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(gps)) || !bytes.Equal(data, jpg) {
		t.Fatalf("stored %d bytes still with the metadata, or not the image itself (%d bytes)", len(data), len(jpg))
	}
	sum := sha256.Sum256(data)
	if stored.Room != room || stored.Uploader != tok.User.ID || stored.Type != "image/jpeg" || stored.Size != int64(len(data)) ||
		stored.Width != 20 || stored.Height != 10 || stored.SHA256 != hex.EncodeToString(sum[:]) || up.Size != stored.Size {
		t.Fatalf("stored %+v, answer %+v", stored, up)
	}
	resp, body := f.get(t, up.URL, tok.JWT)
	if resp.StatusCode != http.StatusOK || bytes.Contains(body, []byte(gps)) {
		t.Fatalf("served: status %d, metadata there: %v", resp.StatusCode, bytes.Contains(body, []byte(gps)))
	}
}

// rawUpload posts body with contentType as the bearer of tok.
func rawUpload(t *testing.T, url, bearer, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// multipartBody builds a multipart body of parts, name then content.
func multipartBody(t *testing.T, parts ...string) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for i := 0; i+1 < len(parts); i += 2 {
		w, err := mw.CreateFormFile(parts[i], "f.png")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(parts[i+1]))
	}
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

func TestUploadRefused(t *testing.T) {
	f := newUploads(t, func(c *tvm.Config) { c.UploadRate = 100 })
	room, tok := f.member(t)
	other, _ := f.member(t)
	png := imagestest.PNG(t, 8, 8)
	big := make([]byte, 5<<20+1)
	copy(big, imagestest.PNG(t, 8, 8))
	exact := make([]byte, 5<<20)
	copy(exact, png)
	cases := []struct {
		name   string
		room   string
		file   string
		data   []byte
		status int
		code   string
	}{
		{"html named .png", room, "cat.png", []byte(imagestest.HTML), 415, natter.EUnsupportedType},
		{"5 MiB + 1 byte", room, "big.png", big, 413, natter.ETooLarge},
		// Within the size limit, the bytes after the image's end make it
		// more than one file.
		{"5 MiB: a png and zeros", room, "big.png", exact, 400, natter.ECorruptImage},
		{"truncated png", room, "t.png", png[:len(png)/2], 400, natter.ECorruptImage},
		{"decompression bomb", room, "bomb.png", imagestest.PNGHeader(100_000, 100_000), 413, natter.ETooLarge},
		{"another room", other, "a.png", png, 403, natter.EForbidden},
		{"not a room id", "No_Such", "a.png", png, 400, natter.EInvalidRoom},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.api.Upload(t.Context(), tok, tc.room, tc.file, tc.data)
			if status, code := apiCode(err); status != tc.status || code != tc.code {
				t.Fatalf("status %d code %q (%v), want %d %q", status, code, err, tc.status, tc.code)
			}
		})
	}

	url := f.url + "/api/v1/rooms/" + room + "/uploads"
	ct, body := multipartBody(t, "file", string(png))
	for _, tc := range []struct {
		name, bearer, ct string
		body             []byte
		status           int
		code             string
	}{
		{"no token", "", ct, body, 401, natter.EUnauthorized},
		{"not a token", "nonsense", ct, body, 401, natter.EUnauthorized},
		{"not multipart", tok.JWT, "image/png", png, 415, natter.EUnsupportedType},
		{"two parts", tok.JWT, "", nil, 400, natter.EMalformed},
		{"a part not named file", tok.JWT, "", nil, 400, natter.EMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.name {
			case "two parts":
				tc.ct, tc.body = multipartBody(t, "file", string(png), "file", string(png))
			case "a part not named file":
				tc.ct, tc.body = multipartBody(t, "image", string(png))
			}
			status, b := rawUpload(t, url, tc.bearer, tc.ct, tc.body)
			if status != tc.status || errorCode(t, b) != tc.code {
				t.Fatalf("status %d %s, want %d %s", status, b, tc.status, tc.code)
			}
		})
	}

	// A body far over the limit is refused at once, from its length.
	status, b := rawUpload(t, url, tok.JWT, ct, make([]byte, 6<<20))
	if status != 413 || errorCode(t, b) != natter.ETooLarge {
		t.Fatalf("6 MiB body: %d %s", status, b)
	}
}

// TestUploadsOfAnotherRoom: a token for room A neither uploads to room B
// nor reads B's uploads, with the token or by asking for a link.
func TestUploadsOfAnotherRoom(t *testing.T) {
	f := newUploads(t, nil)
	_, tokA := f.member(t)
	roomB, tokB := f.member(t)
	up, err := f.api.Upload(t.Context(), tokB, roomB, "b.png", imagestest.PNG(t, 4, 4))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.api.Upload(t.Context(), tokA, roomB, "a.png", imagestest.PNG(t, 4, 4)); !hasCode(err, 403, natter.EForbidden) {
		t.Fatalf("upload to B with A's token: %v", err)
	}
	if _, err := f.api.FetchUpload(t.Context(), tokA, up.UploadID); !hasCode(err, 403, natter.EForbidden) {
		t.Fatalf("fetch B's upload with A's token: %v", err)
	}
	if _, err := f.api.UploadLink(t.Context(), tokA, up.UploadID); !hasCode(err, 403, natter.EForbidden) {
		t.Fatalf("link to B's upload with A's token: %v", err)
	}
	if _, err := f.api.FetchUpload(t.Context(), tokB, up.UploadID); err != nil {
		t.Fatalf("fetch with B's token: %v", err)
	}
	if _, err := f.api.FetchUpload(t.Context(), tokA, natter.NewUploadID()); !hasCode(err, 404, natter.ENotFound) {
		t.Fatalf("no such upload: %v", err)
	}
	resp, body := f.get(t, up.URL, "")
	if resp.StatusCode != 401 || errorCode(t, body) != natter.EUnauthorized {
		t.Fatalf("without a token: %d %s", resp.StatusCode, body)
	}
}

func hasCode(err error, status int, code string) bool {
	s, c := apiCode(err)
	return s == status && c == code
}

// TestUploadLinkExpiredOrTampered: a link is good for its upload until it
// expires, and not once changed.
func TestUploadLinkExpiredOrTampered(t *testing.T) {
	f := newUploads(t, nil)
	room, tok := f.member(t)
	up, err := f.api.Upload(t.Context(), tok, room, "a.gif", imagestest.GIF(t, 4, 4))
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.api.Upload(t.Context(), tok, room, "b.gif", imagestest.GIF(t, 5, 5))
	if err != nil {
		t.Fatal(err)
	}
	link, err := f.api.UploadLink(t.Context(), tok, up.UploadID)
	if err != nil {
		t.Fatal(err)
	}
	_, query, _ := strings.Cut(link.URL, "?")
	exp, sig, _ := strings.Cut(query, "&")
	flip := func(s string) string {
		b := []byte(s)
		if b[len(b)-1] == 'A' {
			b[len(b)-1] = 'B'
		} else {
			b[len(b)-1] = 'A'
		}
		return string(b)
	}
	later := "exp=" + flipDigit(strings.TrimPrefix(exp, "exp="))
	for _, tc := range []struct{ name, url string }{
		{"expired", up.URL + f.tvm.UploadLinkQuery(up.UploadID, time.Now().Add(-time.Second))},
		{"signature changed", up.URL + "?" + exp + "&" + flip(sig)},
		{"expiry changed", up.URL + "?" + later + "&" + sig},
		{"another upload", other.URL + "?" + query},
		{"no signature", up.URL + "?" + exp},
		{"no expiry", up.URL + "?" + sig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.get(t, tc.url, "")
			if resp.StatusCode != 403 || errorCode(t, body) != natter.EForbidden {
				t.Fatalf("status %d %s, want 403 forbidden", resp.StatusCode, body)
			}
		})
	}
	if resp, _ := f.get(t, up.URL+f.tvm.UploadLinkQuery(up.UploadID, time.Now().Add(time.Minute)), ""); resp.StatusCode != 200 {
		t.Fatalf("a good link: %d", resp.StatusCode)
	}
}

func flipDigit(s string) string {
	b := []byte(s)
	b[len(b)-1] = '0' + (b[len(b)-1]-'0'+1)%10
	return string(b)
}

// TestUploadRateLimit: past NATTER_UPLOAD_RATE uploads in a minute, one
// user key is refused with Retry-After; another key is not.
func TestUploadRateLimit(t *testing.T) {
	f := newUploads(t, func(c *tvm.Config) { c.UploadRate = 2 })
	room, tok := f.member(t)
	png := imagestest.PNG(t, 2, 2)
	for i := range 2 {
		if _, err := f.api.Upload(t.Context(), tok, room, "a.png", png); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	ct, body := multipartBody(t, "file", string(png))
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, f.url+"/api/v1/rooms/"+room+"/uploads", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+tok.JWT)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || errorCode(t, b) != natter.ERateLimited || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third upload: %d %s, Retry-After %q", resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	room2, tok2 := f.member(t)
	if _, err := f.api.Upload(t.Context(), tok2, room2, "a.png", png); err != nil {
		t.Fatalf("another user: %v", err)
	}
}

// TestUploadOfAClosedRoomIsGone: once its room closes, an upload is not
// served and is deleted.
func TestUploadOfAClosedRoomIsGone(t *testing.T) {
	gw := gatewaytest.RunGatewayWith(t, func() gateway.Config {
		c := gatewaytest.Config(t.TempDir())
		c.Chat = gateway.ChatConfig{RoomMaxTTL: 2 * time.Second}
		return c
	}())
	s := tvm.New(tvm.Config{Account: gw.Account(), SigningKey: gw.SigningKey(), Rooms: gw, Uploads: gw.Uploads(), TokenTTL: time.Hour, WSPort: 8081})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	f := uploadsFixture{url: srv.URL, api: &client.API{BaseURL: srv.URL}, gw: gw, tvm: s}
	room, tok := f.member(t)
	up, err := f.api.Upload(t.Context(), tok, room, "a.png", imagestest.PNG(t, 4, 4))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.api.FetchUpload(t.Context(), tok, up.UploadID); err != nil {
		t.Fatal(err)
	}
	gatewaytest.WaitFor(t, 20*time.Second, func() error {
		_, err := f.api.FetchUpload(t.Context(), tok, up.UploadID)
		if !hasCode(err, 404, natter.ENotFound) {
			return errors.New("still served")
		}
		return nil
	})
}

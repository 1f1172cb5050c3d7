package natter

import (
	"crypto/rand"
	"regexp"
	"strings"
	"time"
)

// BucketUploads is the object store of uploaded images, objects named by
// upload id.
const BucketUploads = "uploads"

// TypeImage is the entry type of an image message.
const TypeImage = "image"

// Upload is a stored image as the gateway keeps it.
type Upload struct {
	ID        string
	Room      string
	Uploader  string // the user key of the token that uploaded it
	Type      string // image/png, image/jpeg, image/gif or image/webp
	Size      int64
	Width     int
	Height    int
	SHA256    string // hex of the stored bytes
	CreatedAt time.Time
}

// Image is the image of an image message, from its upload's metadata.
type Image struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Size   int64  `json:"size"`
}

// Image is the part of u an image message carries.
func (u Upload) Image() *Image {
	return &Image{ID: u.ID, Type: u.Type, Width: u.Width, Height: u.Height, Size: u.Size}
}

// UploadResponse is the answer of POST /api/v1/rooms/{id}/uploads.
type UploadResponse struct {
	UploadID string `json:"upload_id"`
	URL      string `json:"url"`
	Type     string `json:"type"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Size     int64  `json:"size"`
}

// UploadLink is the answer of GET /api/v1/uploads/{id}/link.
type UploadLink struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

const uploadPrefix = "upl_"

var uploadIDRE = regexp.MustCompile(`^upl_[a-z2-7]{20}$`)

// NewUploadID returns "upl_" and 20 random base32 characters (100 bits).
func NewUploadID() string {
	return uploadPrefix + strings.ToLower(rand.Text()[:20])
}

// ValidUploadID reports whether id has the form of NewUploadID's ids.
func ValidUploadID(id string) bool { return uploadIDRE.MatchString(id) }

// UploadPath is the path an upload is fetched from.
func UploadPath(id string) string { return "/api/v1/uploads/" + id }

// SignedImagePayload is what the sender of an image message signs: its
// own prefix, so that a text message's signature never passes for an
// image's, then the room, the message id, the upload and the caption.
func SignedImagePayload(room, id, upload, text string) []byte {
	return []byte(SignaturePrefix + "/image\n" + room + "\n" + id + "\n" + upload + "\n" + text)
}

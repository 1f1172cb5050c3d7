package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
)

// Uploads keeps uploaded images in the uploads object store, one object
// per upload, named by its id, with the upload's facts as metadata. The
// bucket's TTL is the longest life of a room; a room's uploads are deleted
// when the room closes, and an upload of a closed room is never served.
type Uploads struct {
	c   *chat
	obs jetstream.ObjectStore
}

// Uploads is the image store, for the TVM.
func (g *Gateway) Uploads() *Uploads { return g.chat.uploads }

// Metadata keys of an upload's object.
const (
	metaRoom     = "room"
	metaUploader = "uploader"
	metaType     = "type"
	metaSize     = "size"
	metaWidth    = "width"
	metaHeight   = "height"
	metaSHA256   = "sha256"
)

func (c *chat) provisionUploads(ctx context.Context, replicas int) error {
	obs, err := c.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      natter.BucketUploads,
		Description: "images uploaded to rooms, named by upload id; deleted with their room",
		TTL:         c.cfg.RoomMaxTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return fmt.Errorf("provision object store %s: %w", natter.BucketUploads, err)
	}
	c.uploads = &Uploads{c: c, obs: obs}
	return nil
}

// PutUpload stores data as upload u of an open room. u.ID, Room, Uploader,
// Type, Width and Height come from the caller; Size, SHA256 and CreatedAt
// are set here. Errors: unknown_room, room_closed, unavailable.
func (u *Uploads) PutUpload(ctx context.Context, up natter.Upload, data []byte) (natter.Upload, error) {
	if _, err := u.c.openRoom(ctx, up.Room); err != nil {
		return natter.Upload{}, err
	}
	sum := sha256.Sum256(data)
	up.Size, up.SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
	info, err := u.obs.Put(ctx, jetstream.ObjectMeta{
		Name: up.ID,
		Metadata: map[string]string{
			metaRoom:     up.Room,
			metaUploader: up.Uploader,
			metaType:     up.Type,
			metaSize:     strconv.FormatInt(up.Size, 10),
			metaWidth:    strconv.Itoa(up.Width),
			metaHeight:   strconv.Itoa(up.Height),
			metaSHA256:   up.SHA256,
		},
	}, bytes.NewReader(data))
	if err != nil {
		return natter.Upload{}, unavailable("store upload", err)
	}
	up.CreatedAt = info.ModTime.UTC()
	// The room may have closed while the image was stored, after its
	// uploads were deleted: this one would stay until the bucket's TTL.
	if _, err := u.c.openRoom(ctx, up.Room); err != nil {
		u.delete(ctx, up.ID)
		return natter.Upload{}, err
	}
	return up, nil
}

// Upload returns the upload with id, or not_found: no such upload, or its
// room is gone.
func (u *Uploads) Upload(ctx context.Context, id string) (natter.Upload, error) {
	if !natter.ValidUploadID(id) {
		return natter.Upload{}, natter.Errorf(natter.ENotFound, "no upload %s", id)
	}
	info, err := u.obs.GetInfo(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return natter.Upload{}, natter.Errorf(natter.ENotFound, "no upload %s", id)
	case err != nil:
		return natter.Upload{}, unavailable("read upload", err)
	}
	up, err := uploadOf(info)
	if err != nil {
		return natter.Upload{}, err
	}
	if _, err := u.c.openRoom(ctx, up.Room); err != nil {
		if code := natter.ErrorCode(err); code == natter.EUnknownRoom || code == natter.ERoomClosed {
			return natter.Upload{}, natter.Errorf(natter.ENotFound, "no upload %s: its room is closed", id)
		}
		return natter.Upload{}, err
	}
	return up, nil
}

// OpenUpload returns the upload with id and a reader of its bytes, which
// the caller closes. Errors as Upload's.
func (u *Uploads) OpenUpload(ctx context.Context, id string) (natter.Upload, io.ReadCloser, error) {
	up, err := u.Upload(ctx, id)
	if err != nil {
		return up, nil, err
	}
	r, err := u.obs.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return up, nil, natter.Errorf(natter.ENotFound, "no upload %s", id)
	case err != nil:
		return up, nil, unavailable("read upload", err)
	}
	return up, r, nil
}

// DeleteRoomUploads deletes every upload of room. The uploads are found by
// their metadata: the bucket holds only what rooms open within the last
// RoomMaxTTL uploaded, and a room closes only once.
func (u *Uploads) DeleteRoomUploads(ctx context.Context, room string) (int, error) {
	infos, err := u.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("list uploads: %w", err)
	}
	n := 0
	for _, info := range infos {
		if info.Metadata[metaRoom] != room {
			continue
		}
		if err := u.obs.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return n, fmt.Errorf("delete upload %s: %w", info.Name, err)
		}
		n++
	}
	return n, nil
}

func (u *Uploads) delete(ctx context.Context, id string) {
	if err := u.obs.Delete(ctx, id); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		u.c.log.Warn("delete upload", "upload", id, "err", err)
	}
}

// uploadOf reads an upload back from its object's metadata.
func uploadOf(info *jetstream.ObjectInfo) (natter.Upload, error) {
	m := info.Metadata
	size, err1 := strconv.ParseInt(m[metaSize], 10, 64)
	w, err2 := strconv.Atoi(m[metaWidth])
	h, err3 := strconv.Atoi(m[metaHeight])
	if err := errors.Join(err1, err2, err3); err != nil || m[metaRoom] == "" || m[metaType] == "" {
		return natter.Upload{}, &natter.Error{Code: natter.EInternal, Message: "unreadable upload", Err: fmt.Errorf("upload %s metadata %v: %w", info.Name, m, err)}
	}
	return natter.Upload{
		ID: info.Name, Room: m[metaRoom], Uploader: m[metaUploader], Type: m[metaType],
		Size: size, Width: w, Height: h, SHA256: m[metaSHA256], CreatedAt: info.ModTime.UTC(),
	}, nil
}

// roomUploadsGone deletes a closed room's uploads.
func (c *chat) roomUploadsGone(ctx context.Context, room string) {
	start := time.Now()
	n, err := c.uploads.DeleteRoomUploads(ctx, room)
	if err != nil {
		c.log.Warn("delete closed room's uploads", "room", room, "deleted", n, "err", err)
		return
	}
	if n > 0 {
		c.log.Info("closed room's uploads deleted", "room", room, "uploads", n, "dur", time.Since(start))
	}
}

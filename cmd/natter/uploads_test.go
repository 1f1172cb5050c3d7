package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/images/imagestest"
)

func TestLoadConfigUploads(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg, err := LoadConfig(fs, nil, func(string) string { return "" }, filepath.Join(t.TempDir(), "missing.env"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.UploadMaxBytes != 5<<20 || cfg.UploadRate != 10 {
		t.Fatalf("defaults: max bytes %d, rate %d", cfg.UploadMaxBytes, cfg.UploadRate)
	}
	env := map[string]string{"NATTER_UPLOAD_MAX_BYTES": "1048576"}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	cfg, err = LoadConfig(fs, []string{"-upload-rate", "3"}, func(k string) string { return env[k] }, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.UploadMaxBytes != 1<<20 || cfg.UploadRate != 3 {
		t.Fatalf("set: max bytes %d, rate %d", cfg.UploadMaxBytes, cfg.UploadRate)
	}
}

// TestUploadsEndToEnd runs natter with a small upload limit: an image goes
// up, into a message over WebSocket, and comes back; a larger file and a
// third upload within the minute are refused.
func TestUploadsEndToEnd(t *testing.T) {
	cfg := testConfig(t)
	cfg.UploadMaxBytes, cfg.UploadRate = 4096, 2
	m := runMain(t, cfg)
	api := &client.API{BaseURL: m.baseURL()}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	me, _ := client.NewIdentity()
	tok, err := api.Token(ctx, me, "Ada")
	if err != nil {
		t.Fatal(err)
	}
	room, err := api.CreateRoom(ctx, tok, "Photos")
	if err != nil {
		t.Fatal(err)
	}
	if tok, err = api.Token(ctx, me, "Ada", room.ID); err != nil {
		t.Fatal(err)
	}
	png := imagestest.PNG(t, 16, 16)
	up, err := api.Upload(ctx, tok, room.ID, "a.png", png)
	if err != nil {
		t.Fatal(err)
	}
	var apiErr *client.APIError
	if _, err := api.Upload(ctx, tok, room.ID, "big.png", append(imagestest.PNG(t, 16, 16), make([]byte, 4096)...)); !errors.As(err, &apiErr) || apiErr.Status != 413 {
		t.Fatalf("a file over NATTER_UPLOAD_MAX_BYTES: %v", err)
	}
	if _, err := api.Upload(ctx, tok, room.ID, "b.png", png); !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.Code != natter.ERateLimited {
		t.Fatalf("a third upload in a minute with NATTER_UPLOAD_RATE=2: %v", err)
	}

	c, err := client.Dial(me, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Join(ctx, room.ID, "Ada"); err != nil {
		t.Fatal(err)
	}
	got := make(chan natter.Envelope, 8)
	if _, err := c.Follow(ctx, room.ID, 0, func(e natter.Envelope) { got <- e }); err != nil {
		t.Fatal(err)
	}
	if ack, err := c.SendImage(ctx, room.ID, up.UploadID, "a square"); err != nil || !ack.OK {
		t.Fatalf("image message: %+v %v", ack, err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-got:
			if e.Type != natter.TypeImage {
				continue
			}
			if e.Image == nil || e.Image.ID != up.UploadID || e.Image.Width != 16 || e.Text != "a square" {
				t.Fatalf("image entry %+v", e)
			}
			data, err := api.FetchUpload(ctx, tok, e.Image.ID)
			if err != nil || !bytes.Equal(data, png) {
				t.Fatalf("fetch: %d bytes, %v", len(data), err)
			}
			return
		case <-deadline:
			t.Fatal("no image entry")
		}
	}
}

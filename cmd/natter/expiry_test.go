package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

// TestRoomExpiresAcrossARestart stops natter while a room is still open and
// starts it again after the room's idle TTL has passed: the room still
// closes, once, and its history is purged. Nothing in a natter process keeps
// the time; the TTL and the expiry consumer's position live in JetStream.
func TestRoomExpiresAcrossARestart(t *testing.T) {
	cfg := testConfig(t)
	cfg.RoomIdleTTL = 2 * time.Second
	first := &Main{Config: cfg, Logger: testLogger()}
	if err := first.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	api := &client.API{BaseURL: first.baseURL()}
	u, _ := client.NewIdentity()
	tok, err := api.Token(ctx, u, "Ada")
	if err != nil {
		t.Fatal(err)
	}
	room, err := api.CreateRoom(ctx, tok, "Short lived")
	if err != nil {
		t.Fatal(err)
	}
	if tok, err = api.Token(ctx, u, "Ada", room.ID); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(u, tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(ctx, room.ID, "Ada"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, room.ID, "remember me"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	stoppedAt := time.Now()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	// Start again only once the room's TTL ran out while nothing ran.
	gatewaytest.WaitFor(t, 10*time.Second, func() error {
		if time.Since(stoppedAt) < cfg.RoomIdleTTL+time.Second {
			return errors.New("the idle TTL has not passed yet")
		}
		return nil
	})
	second := runMain(t, cfg)
	js, err := jetstream.New(second.Gateway.Conn())
	if err != nil {
		t.Fatal(err)
	}
	history, err := js.Stream(ctx, "KV_"+natter.BucketHistory)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.WaitFor(t, 20*time.Second, func() error {
		if _, err := second.Gateway.Room(ctx, room.ID); natter.ErrorCode(err) != natter.ERoomClosed {
			return fmt.Errorf("room after restart: %v", err)
		}
		info, err := history.Info(ctx, jetstream.WithSubjectFilter("$KV.history."+room.ID+".>"))
		if err != nil {
			return err
		}
		if n := len(info.State.Subjects); n != 0 {
			return fmt.Errorf("%d history entries left", n)
		}
		return nil
	})
}

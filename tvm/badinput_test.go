package tvm_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/natterchat/natter"
)

// TestTokenWithThousandsOfRooms asks for tokens naming far more rooms than
// a token may hold: ten thousand ids do not fit in a request body and are
// refused as too_large before anything is decoded; as many as fit are
// refused as too_many_rooms. Neither makes or changes a room.
func TestTokenWithThousandsOfRooms(t *testing.T) {
	f := newTVM(t, nil)
	f.mustRoom(t, "lobby")
	_, pub := userKey(t)
	before := f.listRooms(t)
	body := func(n int, id string) string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = `"` + id + `"`
		}
		return `{"public_key":"` + pub + `","rooms":[` + strings.Join(ids, ",") + `]}`
	}
	t.Run("ten thousand", func(t *testing.T) {
		status, _, b := post(t, f.url+"/api/v1/token", "application/json", body(10_000, "lobby"))
		assertError(t, status, b, http.StatusRequestEntityTooLarge, natter.ETooLarge, "larger than")
	})
	t.Run("ten thousand, chunked", func(t *testing.T) {
		// Without a Content-Length the limit trips while reading.
		req, _ := http.NewRequest(http.MethodPost, f.url+"/api/v1/token", io.MultiReader(strings.NewReader(body(10_000, "lobby"))))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		assertError(t, resp.StatusCode, b, http.StatusRequestEntityTooLarge, natter.ETooLarge, "larger than")
	})
	t.Run("as many as fit", func(t *testing.T) {
		b := body(3000, "a")
		if len(b) >= 16<<10 {
			t.Fatalf("body of %d bytes does not fit", len(b))
		}
		status, _, resp := post(t, f.url+"/api/v1/token", "application/json", b)
		assertError(t, status, resp, http.StatusBadRequest, natter.ETooManyRooms, "at most 32")
	})
	after := f.listRooms(t)
	if !slices.EqualFunc(before, after, func(a, b natter.Room) bool { return a.ID == b.ID && a.Members == b.Members }) {
		t.Fatalf("rooms changed: %+v → %+v", before, after)
	}
}

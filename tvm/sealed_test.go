package tvm_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/images/imagestest"
)

// TestSealedRoomAPI: a sealed room says so in every answer, and takes no
// upload; an ordinary room says nothing of it.
func TestSealedRoomAPI(t *testing.T) {
	f := newUploads(t, nil)
	u, err := client.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.api.Token(t.Context(), u, "")
	if err != nil {
		t.Fatal(err)
	}
	room, err := f.api.CreateSealedRoom(t.Context(), tok, "Vault")
	if err != nil || !room.Sealed {
		t.Fatalf("CreateSealedRoom = %+v, %v", room, err)
	}
	plain, err := f.api.CreateRoom(t.Context(), tok, "Plaza")
	if err != nil || plain.Sealed {
		t.Fatalf("CreateRoom = %+v, %v", plain, err)
	}
	resp, body := f.get(t, "/api/v1/rooms/"+room.ID, "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"sealed":true`) {
		t.Fatalf("GET room: %d %s", resp.StatusCode, body)
	}
	resp, body = f.get(t, "/api/v1/rooms/"+plain.ID, "")
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), `"sealed"`) {
		t.Fatalf("GET ordinary room: %d %s", resp.StatusCode, body)
	}
	rooms, err := f.api.Rooms(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]bool{}
	for _, r := range rooms {
		flags[r.ID] = r.Sealed
	}
	if len(flags) != 2 || !flags[room.ID] || flags[plain.ID] {
		t.Fatalf("listed flags %v", flags)
	}

	// sealed must be a boolean.
	err = client.DoJSON(t.Context(), http.DefaultClient, http.MethodPost, f.url+"/api/v1/rooms", tok.JWT, []byte(`{"sealed":"yes"}`), nil)
	if status, code := apiCode(err); status != http.StatusBadRequest || code != natter.EMalformed {
		t.Fatalf("sealed as a string: %v", err)
	}

	tok, err = f.api.Token(t.Context(), u, "", room.ID, plain.ID)
	if err != nil {
		t.Fatal(err)
	}
	png := imagestest.PNG(t, 4, 4)
	_, err = f.api.Upload(t.Context(), tok, room.ID, "a.png", png)
	if status, code := apiCode(err); status != http.StatusBadRequest || code != natter.ESealedRoom {
		t.Fatalf("upload to a sealed room: %v, want 400 %s", err, natter.ESealedRoom)
	}
	if _, err := f.api.Upload(t.Context(), tok, plain.ID, "a.png", png); err != nil {
		t.Fatalf("upload to an ordinary room: %v", err)
	}
}

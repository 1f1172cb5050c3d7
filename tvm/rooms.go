package tvm

import (
	"context"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/natterchat/natter"
)

// RoomService is what the TVM needs of the rooms; the gateway provides it.
// Errors carry natter codes: unknown_room, room_closed, room_limit,
// unavailable.
type RoomService interface {
	CreateRoom(ctx context.Context, id, name, creator string, sealed bool) (natter.Room, error)
	Room(ctx context.Context, id string) (natter.Room, error)
	Rooms(ctx context.Context) ([]natter.Room, error)
	Stats(ctx context.Context) (natter.Stats, error)
}

type createRoomRequest struct {
	Name string `json:"name"`
	// Sealed makes an end-to-end encrypted room; the key stays with the
	// browsers, the server learns only this flag.
	Sealed bool `json:"sealed"`
}

// RoomList is the answer of GET /api/v1/rooms.
type RoomList struct {
	Rooms []natter.Room `json:"rooms"`
}

// createRoom makes a room for the bearer of a natter token. Absent or
// empty, the name is an element's.
func (s *Server) createRoom(c echo.Context) error {
	user, err := s.bearerUser(c)
	if err != nil {
		return err
	}
	var req createRoomRequest
	if err := decodeOptionalJSON(c.Request(), &req); err != nil {
		return err
	}
	name := elementName()
	if req.Name != "" {
		if name, err = natter.CleanRoomName(req.Name); err != nil {
			return err
		}
	}
	room, err := s.cfg.Rooms.CreateRoom(c.Request().Context(), newRoomID(name), name, user, req.Sealed)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/rooms/"+room.ID)
	return c.JSON(http.StatusCreated, room)
}

func (s *Server) listRooms(c echo.Context) error {
	rooms, err := s.cfg.Rooms.Rooms(c.Request().Context())
	if err != nil {
		return err
	}
	if rooms == nil {
		rooms = []natter.Room{} // a list, even when empty
	}
	return c.JSON(http.StatusOK, RoomList{Rooms: rooms})
}

func (s *Server) getRoom(c echo.Context) error {
	id := c.Param("id")
	if !natter.ValidRoomID(id) {
		return natter.Errorf(natter.EInvalidRoom, "%s is not a room id: 1-64 of a-z, 0-9 and -, starting with a letter or digit", quoteShort(id))
	}
	room, err := s.cfg.Rooms.Room(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, room)
}

func (s *Server) stats(c echo.Context) error {
	st, err := s.cfg.Rooms.Stats(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

// checkRoomsExist makes sure every room a token is asked for is open: a
// token for a room nobody created would be a token for a room anybody
// could create later.
func (s *Server) checkRoomsExist(ctx context.Context, rooms []string) error {
	for i, id := range rooms {
		_, err := s.cfg.Rooms.Room(ctx, id)
		if err == nil {
			continue
		}
		switch natter.ErrorCode(err) {
		case natter.EUnknownRoom:
			return &natter.Error{Code: natter.EUnknownRoom, Message: fmt.Sprintf("rooms[%d] %s does not exist; create it with POST /api/v1/rooms", i, quoteShort(id)), Err: err}
		case natter.ERoomClosed:
			return &natter.Error{Code: natter.ERoomClosed, Message: fmt.Sprintf("rooms[%d] %s is closed", i, quoteShort(id)), Err: err}
		}
		return err
	}
	return nil
}

package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/sealed"
)

// ServiceName is the name the pipeline registers as a NATS micro service:
// `nats micro ls` lists it, `nats micro stats natter` counts its requests.
const ServiceName = "natter"

// requestTimeout bounds the work of one request.
const requestTimeout = 10 * time.Second

// answerWithin bounds a pipeline request from its arrival to its answer,
// its wait behind the room's earlier requests included. It is half the web
// app's request timeout (REQUEST_TIMEOUT_MS, 10 s): when JetStream cannot
// store (a cluster without quorum, a stream electing a leader), each
// sender, still waiting, is told unavailable and may resend, rather than
// timing out on an answer that comes too late.
const answerWithin = 5 * time.Second

// startService subscribes the pipeline's endpoints in the "natter" queue
// group, so each request goes to exactly one of the natter processes.
func (c *chat) startService() error {
	svc, err := micro.AddService(c.nc, micro.Config{
		Name:        ServiceName,
		Version:     "0.1.0",
		Description: "natter message pipeline: send, history, presence",
		QueueGroup:  ServiceName,
		StatsHandler: func(*micro.Endpoint) any {
			return map[string]int64{"dropped_replies": c.droppedReplies.Load()}
		},
	})
	if err != nil {
		return err
	}
	c.svc = svc
	c.work = newWorkers()
	for _, ep := range []struct {
		op      natter.Op
		request bool // needs a reply subject
		handle  func(ctx context.Context, room, user string, data []byte) any
	}{
		{natter.OpSend, true, c.send},
		{natter.OpHistory, true, c.historyRequest},
		{natter.OpJoin, true, c.join},
		{natter.OpHere, false, c.here},
		{natter.OpLeave, false, c.leave},
	} {
		err := svc.AddEndpoint(string(ep.op), c.endpoint(ep.request, c.measured(ep.op, ep.handle)), micro.WithEndpointSubject(natter.AllUsers(ep.op)))
		if err != nil {
			return err
		}
	}
	return nil
}

// endpoint wraps a handler: it reads room and user from the subject (the
// server guarantees the user through the publish permission), refuses reply
// subjects outside the sender's own inbox, and sends the handler's answer.
func (c *chat) endpoint(request bool, handle func(ctx context.Context, room, user string, data []byte) any) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		room, user, ok := parseUserSubject(r.Subject())
		if !ok {
			return
		}
		reply := r.Reply()
		// Answering on any other subject would let a user make the gateway
		// publish where the user may not.
		if reply != "" && !strings.HasPrefix(reply, natter.InboxPrefix(user)+".") || request && reply == "" {
			c.droppedReplies.Add(1)
			return
		}
		data, deadline := r.Data(), time.Now().Add(answerWithin)
		// Answered by c.run on its own, not through r: micro reads r when
		// this returns, and the work finishes later.
		if !c.work.do(room, func() { c.run(room, user, reply, data, deadline, handle) }) && reply != "" {
			c.respond(reply, natter.Reply{Error: body(natter.Errorf(natter.EUnavailable, "natter is shutting down, try again"))})
		}
	})
}

// run does one request and answers it by the deadline.
func (c *chat) run(room, user, reply string, data []byte, deadline time.Time, handle func(ctx context.Context, room, user string, data []byte) any) {
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	resp := handle(ctx, room, user, data)
	if reply == "" {
		return
	}
	c.respond(reply, resp)
}

// respond sends resp to reply the way micro would, error headers included,
// so that `nats req` and other micro clients read it as usual.
func (c *chat) respond(reply string, resp any) {
	data, _ := json.Marshal(resp)
	msg := &nats.Msg{Subject: reply, Data: data}
	if e := errorOf(resp); e != nil {
		msg.Header = nats.Header{micro.ErrorHeader: {e.Message}, micro.ErrorCodeHeader: {e.Code}}
	}
	if err := c.nc.PublishMsg(msg); err != nil {
		c.log.Warn("reply", "err", err)
	}
}

func errorOf(resp any) *natter.ErrorBody {
	switch v := resp.(type) {
	case natter.Ack:
		return v.Error
	case natter.HistoryReply:
		return v.Error
	case natter.JoinReply:
		return v.Error
	case natter.Reply:
		return v.Error
	}
	return nil
}

// parseUserSubject splits chat.<room>.<op>.<user>. Only a subject natter
// itself builds for a client operation is taken: the endpoints' own
// subscriptions ensure that today, and this keeps it so should they change.
func parseUserSubject(subject string) (room, user string, ok bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || !natter.ValidRoomID(parts[1]) || !natter.ValidUserKey(parts[3]) ||
		!slices.Contains(natter.ClientOps, natter.Op(parts[2])) ||
		natter.UserSubject(parts[1], natter.Op(parts[2]), parts[3]) != subject {
		return "", "", false
	}
	return parts[1], parts[3], true
}

// body turns an error into the reply's error part.
func body(err error) *natter.ErrorBody {
	return &natter.ErrorBody{Code: natter.ErrorCode(err), Message: natter.ErrorMessage(err)}
}

// decodeStrict decodes exactly one JSON object with only known fields.
func decodeStrict(data []byte, v any) error {
	if !utf8.Valid(data) {
		return natter.Errorf(natter.EInvalidUTF8, "the request is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err != nil {
		return natter.Errorf(natter.EMalformed, "request: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// CheckText validates a message text: valid UTF-8, not only whitespace, at
// most maxChars code points, no control characters but newline and tab.
func CheckText(text string, maxChars int) error {
	switch {
	case !utf8.ValidString(text):
		return natter.Errorf(natter.EInvalidUTF8, "text is not valid UTF-8")
	case strings.TrimSpace(text) == "":
		return natter.Errorf(natter.EEmpty, "text is empty")
	}
	if n := utf8.RuneCountInString(text); n > maxChars {
		return natter.Errorf(natter.ETooLong, "text has %d characters, at most %d are allowed", n, maxChars)
	}
	if strings.ContainsFunc(text, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
		return natter.Errorf(natter.EControlChars, "text contains control characters (only newline and tab are allowed)")
	}
	return nil
}

// VerifySignature checks sig, base64url ed25519 by user over
// natter.SignedPayload(room, id, text).
func VerifySignature(user, room, id, text, sig string) error {
	_, err := verifySignature(user, room, id, text, sig)
	return err
}

// verifySignature is VerifySignature that also returns the signature in
// its canonical encoding: base64url without padding. Go's decoder also takes
// padding, line breaks and stray low bits, which other clients' decoders may
// not; only the canonical form is stored, so every reader can verify it.
func verifySignature(user, room, id, text, sig string) (string, error) {
	return verifyPayload(user, natter.SignedPayload(room, id, text), sig, "room, id and text")
}

// verifyPayload checks sig, base64url ed25519 by user over payload, and
// returns it in its canonical encoding; what names the payload's parts
// for the error.
func verifyPayload(user string, payload []byte, sig, what string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(sig, "="))
	if err != nil || len(raw) != ed25519.SignatureSize {
		return "", natter.Errorf(natter.EBadSignature, "sig must be a base64url ed25519 signature of %d bytes", ed25519.SignatureSize)
	}
	ok, err := verifyUser(user, payload, raw)
	if err != nil {
		return "", natter.Errorf(natter.EBadSignature, "sender key unusable")
	}
	if !ok {
		return "", natter.Errorf(natter.EBadSignature, "signature does not verify for this %s", what)
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// CheckCT validates the ct of a sealed message: canonical base64url
// without padding of a nonce, a ciphertext of 1 to 4×maxChars bytes (the
// longest UTF-8 of maxChars code points) and a tag. The gateway cannot read
// the text, so this bound is the whole of its length check.
func CheckCT(ct string, maxChars int) error {
	raw, err := sealed.Decode(ct)
	if err != nil {
		return natter.Errorf(natter.EMalformed, "ct must be base64url without padding of nonce, ciphertext and tag: %v", err)
	}
	if minLen := sealed.Overhead + 1; len(raw) < minLen {
		return natter.Errorf(natter.EMalformed, "ct has %d bytes, at least %d are needed (nonce, tag and a text)", len(raw), minLen)
	}
	if maxLen := sealed.Overhead + 4*maxChars; len(raw) > maxLen {
		return natter.Errorf(natter.ETooLong, "ct has %d bytes, at most %d are allowed (a text of %d characters)", len(raw), maxLen, maxChars)
	}
	return nil
}

// CheckSend validates a send request from user in room, without state: a
// sealed message (with ct) or not is checked against the room's record by
// the caller, which alone knows whether the room is sealed.
func CheckSend(data []byte, room, user string, maxChars int) (natter.SendRequest, error) {
	var req natter.SendRequest
	if err := decodeStrict(data, &req); err != nil {
		return req, err
	}
	if !natter.ValidMessageID(req.ID) {
		return req, natter.Errorf(natter.EMalformed, "id must be 1-%d of A-Z a-z 0-9 _ -", natter.MaxMessageIDLen)
	}
	var sig string
	var err error
	switch {
	case req.CT != "" && req.Type == natter.TypeImage:
		return req, natter.Errorf(natter.ESealedRoom, "an image message has no ct: images cannot be sent to sealed rooms")
	case req.CT != "" && req.Type != "" && req.Type != natter.TypeMessage:
		return req, natter.Errorf(natter.EMalformed, "type must be message or image")
	case req.CT != "":
		if req.Upload != "" || req.Text != "" {
			return req, natter.Errorf(natter.EMalformed, "a sealed message has ct and no text or upload")
		}
		if err := CheckCT(req.CT, maxChars); err != nil {
			return req, err
		}
		sig, err = verifyPayload(user, natter.SignedPayload(room, req.ID, req.CT), req.Sig, "room, id and ct")
		if err != nil {
			return req, err
		}
		req.Sig = sig
		return req, nil
	}
	switch req.Type {
	case "", natter.TypeMessage:
		if req.Upload != "" {
			return req, natter.Errorf(natter.EMalformed, "a text message has no upload; send it with type image")
		}
		if err := CheckText(req.Text, maxChars); err != nil {
			return req, err
		}
		sig, err = verifySignature(user, room, req.ID, req.Text, req.Sig)
	case natter.TypeImage:
		if !natter.ValidUploadID(req.Upload) {
			return req, natter.Errorf(natter.EMalformed, "upload must be the upload_id of POST /api/v1/rooms/{id}/uploads")
		}
		// The caption is optional; one that is there follows the rules
		// of a text.
		if req.Text != "" {
			if err := CheckText(req.Text, maxChars); err != nil {
				return req, err
			}
		}
		sig, err = verifyPayload(user, natter.SignedImagePayload(room, req.ID, req.Upload, req.Text), req.Sig, "room, id, upload and caption")
	default:
		return req, natter.Errorf(natter.EMalformed, "type must be message or image")
	}
	if err != nil {
		return req, err
	}
	req.Sig = sig
	return req, nil
}

func (c *chat) send(ctx context.Context, room, user string, data []byte) any {
	req, err := CheckSend(data, room, user, c.cfg.MessageMaxChars)
	if err != nil {
		return natter.Ack{Error: body(err)}
	}
	if !c.limits.allow(room + "." + user) {
		return natter.Ack{Error: body(natter.Errorf(natter.ERateLimited, "too many messages; at most %g a second", c.cfg.SendRate))}
	}
	rec, err := c.openRoom(ctx, room)
	if err != nil {
		return natter.Ack{Error: body(err)}
	}
	if err := checkSealed(rec, req); err != nil {
		return natter.Ack{Error: body(err)}
	}
	me, err := c.member(ctx, room, user)
	if err != nil {
		return natter.Ack{Error: body(err)}
	}
	if me.Verified {
		// Joined as a registered member: the account's sessions may have
		// ended since (log out), and its name is not this key's any more.
		if bound, err := c.accounts.KeyBound(ctx, user); err != nil {
			return natter.Ack{Error: body(err)}
		} else if !bound {
			return natter.Ack{Error: body(natter.Errorf(natter.ENotJoined, "the account's sessions ended since this key joined room %s as it; join again", room))}
		}
	}
	typ, img := natter.TypeMessage, (*natter.Image)(nil)
	if req.Type == natter.TypeImage {
		up, err := c.uploads.Upload(ctx, req.Upload)
		if code := natter.ErrorCode(err); code == natter.ENotFound || err == nil && up.Room != room {
			return natter.Ack{Error: body(natter.Errorf(natter.EUnknownUpload, "no upload %s in room %s", req.Upload, room))}
		} else if err != nil {
			return natter.Ack{Error: body(err)}
		}
		typ, img = natter.TypeImage, up.Image()
	}
	env, data, dup, err := c.appendHistory(ctx, rec, room+"."+user+"."+req.ID, func(seq uint64, now time.Time) natter.Envelope {
		return natter.Envelope{Room: room, Seq: seq, ID: req.ID, Type: typ, From: me, Text: req.Text, CT: req.CT, Sig: req.Sig, SentAt: now, Image: img}
	})
	if err != nil {
		return natter.Ack{Error: body(err)}
	}
	// A resend may follow a crash between storing and broadcasting, so the
	// entry is broadcast again; clients drop what they have by seq.
	c.broadcast(room, data)
	if !dup {
		// Only a counter: not worth a round trip before the ack.
		if _, err := c.js.PublishAsync(subjectMsgLog, nil); err != nil {
			c.log.Warn("count message", "err", err)
		}
		c.touch(ctx, rec)
	}
	return natter.Ack{OK: true, Seq: env.Seq, SentAt: &env.SentAt}
}

// checkSealed refuses a send that does not fit the room: a sealed room
// takes only sealed texts (ct), an ordinary room never ct, which nobody
// in it could read.
func checkSealed(rec roomRecord, req natter.SendRequest) error {
	switch {
	case rec.Sealed && req.Type == natter.TypeImage:
		return natter.Errorf(natter.ESealedRoom, "room %s is sealed: images are not encrypted, so they cannot be sent there", rec.ID)
	case rec.Sealed && req.CT == "":
		return natter.Errorf(natter.ESealedRoom, "room %s is sealed: send the text encrypted as ct, not as text", rec.ID)
	case !rec.Sealed && req.CT != "":
		return natter.Errorf(natter.ESealedRoom, "room %s is not sealed: send text, not ct", rec.ID)
	}
	return nil
}

// broadcast sends a stored entry, as stored, to the room.
func (c *chat) broadcast(room string, data []byte) {
	if err := c.nc.Publish(natter.RoomSubject(room, natter.TopicMsgs), data); err != nil {
		c.log.Warn("broadcast", "room", room, "err", err)
	}
}

// MaxHistoryPage is the most entries one history request returns.
const MaxHistoryPage = 500

func (c *chat) historyRequest(ctx context.Context, room, user string, data []byte) any {
	req := natter.HistoryRequest{Limit: MaxHistoryPage}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := decodeStrict(data, &req); err != nil {
			return natter.HistoryReply{Error: body(err)}
		}
	}
	if req.Limit <= 0 || req.Limit > MaxHistoryPage {
		req.Limit = MaxHistoryPage
	}
	if _, err := c.openRoom(ctx, room); err != nil {
		return natter.HistoryReply{Error: body(err)}
	}
	msgs, last, err := c.readHistory(ctx, room, req.AfterSeq, req.Limit, c.maxReply)
	if err != nil {
		return natter.HistoryReply{Error: body(err)}
	}
	return natter.HistoryReply{OK: true, Messages: msgs, LastSeq: last}
}

package tvm

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/jwt/v2"

	"github.com/natterchat/natter"
)

// Inspection tells Explain what it knows beyond the token itself.
type Inspection struct {
	// SigningKey is natter's TVM key, when known; a token signed by any other
	// key is flagged.
	SigningKey string
	// MaxPayload and MaxSubs are the limits of the account's template.
	MaxPayload, MaxSubs int64
	Now                 time.Time
}

var opMeaning = map[natter.Op]string{
	natter.OpSend:    "post messages (request to the gateway)",
	natter.OpHistory: "read stored messages (request to the gateway)",
	natter.OpTyping:  "send typing hints",
	natter.OpJoin:    "join the room's member list (request to the gateway)",
	natter.OpHere:    "presence heartbeats",
	natter.OpLeave:   "leave the member list",
}

// Explain decodes token, checks its signature and writes in plain words who
// it is for, when it expires and exactly what it may publish and subscribe.
func Explain(w io.Writer, token string, in Inspection) error {
	uc, err := jwt.DecodeUserClaims(strings.TrimSpace(token))
	if err != nil {
		return fmt.Errorf("not a valid NATS user JWT: %w", err)
	}
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "User:\t%s (%s)\n", uc.Name, uc.Subject)
	fmt.Fprintf(tw, "Account:\t%s\n", issuerAccount(uc))
	signer := "an unknown key"
	switch {
	case in.SigningKey != "" && uc.Issuer == in.SigningKey:
		signer = "natter's token signing key"
	case in.SigningKey != "":
		signer = "a key that is NOT this natter's token signing key: natter will refuse it"
	}
	fmt.Fprintf(tw, "Signed by:\t%s, %s\n", uc.Issuer, signer)
	fmt.Fprintf(tw, "Issued:\t%s\n", time.Unix(uc.IssuedAt, 0).UTC().Format(time.RFC3339))
	switch exp := time.Unix(uc.Expires, 0).UTC(); {
	case uc.Expires == 0:
		fmt.Fprintf(tw, "Expires:\tnever\n")
	case exp.Before(in.Now):
		fmt.Fprintf(tw, "Expires:\t%s, EXPIRED %s ago\n", exp.Format(time.RFC3339), in.Now.Sub(exp).Round(time.Second))
	default:
		fmt.Fprintf(tw, "Expires:\t%s, in %s\n", exp.Format(time.RFC3339), exp.Sub(in.Now).Round(time.Second))
	}
	if !uc.HasEmptyPermissions() || uc.IssuerAccount == "" {
		fmt.Fprintf(tw, "Permissions:\tcarried in the token itself: this is not a token natter vends\n")
		return tw.Flush()
	}
	rooms := natter.RoomsFromTags(uc.Tags)
	if len(rooms) == 0 {
		fmt.Fprintf(tw, "Rooms:\tnone\n")
	} else {
		fmt.Fprintf(tw, "Rooms:\t%s\n", strings.Join(rooms, ", "))
	}
	fmt.Fprintf(tw, "Connects:\tover WebSocket only\n")
	if in.MaxPayload > 0 {
		fmt.Fprintf(tw, "Limits:\tmessages up to %d bytes, at most %d subscriptions\n", in.MaxPayload, in.MaxSubs)
	}
	tw.Flush()

	perms := natter.UserPermissions(rooms, uc.Subject)
	fmt.Fprintln(w, "\nMay publish to:")
	if len(perms.Pub) == 0 {
		fmt.Fprintln(w, "  nothing")
	}
	for i, s := range perms.Pub {
		fmt.Fprintf(w, "  %-40s %s\n", s, opMeaning[natter.ClientOps[i%len(natter.ClientOps)]])
	}
	fmt.Fprintln(w, "May subscribe to:")
	for _, s := range perms.Sub {
		fmt.Fprintf(w, "  %-40s %s\n", s, subMeaning(s))
	}
	fmt.Fprintln(w, "Everything else is denied: no other room, no other user's inbox, no JetStream API.")
	return nil
}

func issuerAccount(uc *jwt.UserClaims) string {
	if uc.IssuerAccount != "" {
		return uc.IssuerAccount
	}
	return uc.Issuer
}

func subMeaning(subject string) string {
	switch {
	case strings.HasPrefix(subject, "_INBOX_"):
		return "its own inbox: replies from the gateway"
	case strings.HasSuffix(subject, "."+string(natter.TopicMsgs)):
		return "the room's messages"
	case strings.HasSuffix(subject, "."+string(natter.TopicMembers)):
		return "the room's membership changes"
	}
	return "members' typing hints"
}

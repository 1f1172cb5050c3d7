package tvm

import (
	"slices"
	"strconv"
	"time"
)

// IsElement reports whether name is one of the element names rooms get,
// for the external tests.
func IsElement(name string) bool { return slices.Contains(elements, name) }

// UploadLinkQuery is the query of a link to upload id that expires at
// exp, signed as this TVM signs them, for tests of expired links.
func (s *Server) UploadLinkQuery(id string, exp time.Time) string {
	ts := strconv.FormatInt(exp.Unix(), 10)
	return "?exp=" + ts + "&sig=" + s.uploadLinkSig(id, ts)
}

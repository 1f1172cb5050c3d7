package tvm

import "slices"

// IsElement reports whether name is one of the element names rooms get,
// for the external tests.
func IsElement(name string) bool { return slices.Contains(elements, name) }

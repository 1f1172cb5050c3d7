package tvm

import (
	"crypto/rand"
	"encoding/base32"
	mrand "math/rand/v2"
	"strings"
)

// elements names the rooms nobody named: all 118 elements of the periodic
// table, in order of atomic number.
var elements = []string{
	"Hydrogen", "Helium", "Lithium", "Beryllium", "Boron", "Carbon", "Nitrogen", "Oxygen", "Fluorine", "Neon",
	"Sodium", "Magnesium", "Aluminium", "Silicon", "Phosphorus", "Sulfur", "Chlorine", "Argon", "Potassium", "Calcium",
	"Scandium", "Titanium", "Vanadium", "Chromium", "Manganese", "Iron", "Cobalt", "Nickel", "Copper", "Zinc",
	"Gallium", "Germanium", "Arsenic", "Selenium", "Bromine", "Krypton", "Rubidium", "Strontium", "Yttrium", "Zirconium",
	"Niobium", "Molybdenum", "Technetium", "Ruthenium", "Rhodium", "Palladium", "Silver", "Cadmium", "Indium", "Tin",
	"Antimony", "Tellurium", "Iodine", "Xenon", "Caesium", "Barium", "Lanthanum", "Cerium", "Praseodymium", "Neodymium",
	"Promethium", "Samarium", "Europium", "Gadolinium", "Terbium", "Dysprosium", "Holmium", "Erbium", "Thulium", "Ytterbium",
	"Lutetium", "Hafnium", "Tantalum", "Tungsten", "Rhenium", "Osmium", "Iridium", "Platinum", "Gold", "Mercury",
	"Thallium", "Lead", "Bismuth", "Polonium", "Astatine", "Radon", "Francium", "Radium", "Actinium", "Thorium",
	"Protactinium", "Uranium", "Neptunium", "Plutonium", "Americium", "Curium", "Berkelium", "Californium", "Einsteinium", "Fermium",
	"Mendelevium", "Nobelium", "Lawrencium", "Rutherfordium", "Dubnium", "Seaborgium", "Bohrium", "Hassium", "Meitnerium", "Darmstadtium",
	"Roentgenium", "Copernicium", "Nihonium", "Flerovium", "Moscovium", "Livermorium", "Tennessine", "Oganesson",
}

// elementName picks a random element for a room without a name. It is a
// name, not a secret: the id's suffix carries the entropy.
func elementName() string { return elements[mrand.IntN(len(elements))] }

// maxSlugLen bounds the readable part of a room id, so that with the
// suffix it stays well inside the 64 characters of a room id.
const maxSlugLen = 40

// slug turns a room name into the readable part of its id: lower-case
// ASCII letters and digits, every run of anything else one '-', no '-' at
// either end, at most maxSlugLen characters, "room" if nothing is left.
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
			continue
		}
		dash = true
	}
	s := b.String()
	if len(s) > maxSlugLen {
		s = strings.TrimRight(s[:maxSlugLen], "-")
	}
	if s == "" {
		return "room"
	}
	return s
}

// suffixEncoding writes 5 random bytes as 8 characters of [a-z2-7].
var suffixEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// randomSuffix is 8 characters carrying 40 bits from crypto/rand: room ids
// are unguessable, so knowing one room's id tells nothing of another's.
func randomSuffix() string {
	var b [5]byte
	rand.Read(b[:]) // never fails; the runtime aborts if it could not read
	return suffixEncoding.EncodeToString(b[:])
}

// newRoomID is a fresh id for a room named name, like "neon-k7f3qz2a".
func newRoomID(name string) string { return slug(name) + "-" + randomSuffix() }

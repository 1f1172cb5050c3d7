package tvm

import "math/rand/v2"

var (
	adjectives = []string{
		"Brave", "Calm", "Clever", "Curious", "Daring", "Eager", "Gentle", "Happy", "Jolly", "Kind",
		"Lively", "Lucky", "Merry", "Mighty", "Nimble", "Noble", "Patient", "Playful", "Proud", "Quick",
		"Quiet", "Sunny", "Swift", "Witty", "Wise", "Bold", "Bright", "Cosy", "Fuzzy", "Zesty",
	}
	animals = []string{
		"Otter", "Badger", "Falcon", "Fox", "Heron", "Koala", "Lynx", "Marmot", "Newt", "Owl",
		"Panda", "Puffin", "Quokka", "Raven", "Seal", "Sparrow", "Tapir", "Tiger", "Walrus", "Wombat",
		"Yak", "Zebra", "Beaver", "Camel", "Dolphin", "Gecko", "Ibis", "Lemur", "Moose", "Orca",
	}
)

// friendlyName picks a random display name like "Brave Otter".
func friendlyName() string {
	return adjectives[rand.IntN(len(adjectives))] + " " + animals[rand.IntN(len(animals))]
}

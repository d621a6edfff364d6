package flowsync

// Cookie layout (64 bits), see the package doc:
//
//	63      56 55           40 39      32 31                 0
//	+---------+---------------+----------+--------------------+
//	|  0x4e   |     round     |   kind   |     object key     |
//	+---------+---------------+----------+--------------------+
const (
	// CookieMagic marks a flow as Neutrino's ('N'); flows without it are
	// never dumped, changed or pruned by the engine.
	CookieMagic uint64 = 0x4e << 56
	// CookieMagicMask selects the magic byte.
	CookieMagicMask uint64 = 0xff << 56
	// CookieRoundMask selects the leader round.
	CookieRoundMask uint64 = 0xffff << 40
	// CookieOwnerMask selects kind and object key: what the compiler sets.
	CookieOwnerMask uint64 = 1<<40 - 1

	cookieRoundShift = 40
	cookieKindShift  = 32
)

// Cookie builds the owner part of a cookie: the object kind (a small
// number the pipeline doc assigns, e.g. 1 = network, 2 = port) and the
// object's key, a number unique among the objects of its kind (the
// pipeline uses the datapath keys the state machine allocates). The engine
// adds magic and round.
func Cookie(kind uint8, objectKey uint32) uint64 {
	return uint64(kind)<<cookieKindShift | uint64(objectKey)
}

// CookieObject returns the object key of a cookie.
func CookieObject(c uint64) uint32 { return uint32(c) }

// CookieKind returns the object kind of a cookie.
func CookieKind(c uint64) uint8 { return uint8(c >> cookieKindShift) }

// CookieRound returns the leader round of a cookie.
func CookieRound(c uint64) uint16 { return uint16(c >> cookieRoundShift) }

// IsOurs reports whether a cookie carries the Neutrino magic.
func IsOurs(c uint64) bool { return c&CookieMagicMask == CookieMagic }

// StampCookie is the cookie the engine installs for a flow whose compiler
// cookie is owner, in round.
func StampCookie(owner uint64, round uint16) uint64 { return stamp(owner, round) }

// stamp puts magic and round onto the owner bits the compiler chose.
func stamp(c uint64, round uint16) uint64 {
	return CookieMagic | uint64(round)<<cookieRoundShift | c&CookieOwnerMask
}

package watch

import "encoding/json"

// Format is the version of the wire format below; a server and a client
// agree on it or the client refuses the answer.
const Format = 1

// Ops of a Change.
const (
	OpUpsert = "upsert"
	OpDelete = "delete"
)

// Paths of the watch API, served by every server from its own replica.
const (
	PathWatch    = "/v1/watch"
	PathSnapshot = "/v1/watch/snapshot"
)

// Answer is the body of GET /v1/watch: the changes of the watched tables in
// (since, Revision], every object as of one read of the server's state.
// Objects are the JSON of the fsm model types: an internal format, versioned
// by Format, not a public API.
type Answer struct {
	Format int `json:"format"`
	// Revision is the revision the changes reach. When More is set it is
	// below ReadAt and the changes' objects are as of ReadAt: the client
	// asks again from Revision and uses nothing before an answer without
	// More.
	Revision uint64 `json:"revision"`
	// ReadAt is the revision of the server's state the objects were read
	// from.
	ReadAt  uint64       `json:"read_at"`
	More    bool         `json:"more,omitempty"`
	Epoch   uint64       `json:"epoch"`
	Changes []WireChange `json:"changes"`
}

// WireChange is one object that changed: its state at ReadAt (upsert) or
// its absence (delete).
type WireChange struct {
	Table  string          `json:"table"`
	ID     string          `json:"id"`
	Op     string          `json:"op"`
	Object json.RawMessage `json:"object,omitempty"`
}

// SnapshotAnswer is the body of GET /v1/watch/snapshot: every object of the
// watched tables at Revision, as upserts.
type SnapshotAnswer struct {
	Format   int          `json:"format"`
	Revision uint64       `json:"revision"`
	Epoch    uint64       `json:"epoch"`
	Objects  []WireChange `json:"objects"`
}

package fsm

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	memdb "github.com/hashicorp/go-memdb"
)

// A command body can decode yet lack the object it acts on (msgpack nil
// in place of a *Port, a nil element in a []*Network): FuzzApply found
// such bodies crash their handlers on a nil pointer. The leader never
// proposes one, so it is refused like any invalid input, the same way on
// every replica, and nothing is written.
//
// The check is made once, where every command is decoded (mustDecode),
// rather than in each handler, so a new command is covered without
// anyone remembering to: a pointer to a struct must not be nil unless its
// field is tagged `fsm:"optional"`, and a slice or map of pointers never
// holds nil. mustDecode reports a missing object by panicking with a
// missingObject, which runHandler alone recovers and returns as the
// command's error (as encoding/json does internally), so the ~70 handlers
// keep their one-line decode.

// missingObject is the panic value mustDecode raises for a body that
// lacks a required object; runHandler turns it into an error result.
type missingObject struct{ err error }

// String starts with "fsm: " like every deliberate stop: if it ever
// escaped runHandler it would stop the server with a clear reason.
func (m missingObject) String() string { return "fsm: " + m.err.Error() }

// errMissing answers a command whose body decodes but lacks an object.
func errMissing(cmd, what string) error {
	return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: %s without %s.", cmd, what)
}

// checkPresent returns errMissing for the first required object that out
// (a pointer to a decoded command body) lacks, in field order.
func checkPresent(out any) error {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	v = v.Elem()
	if path := missingPath(v, ""); path != "" {
		return errMissing(v.Type().Name(), path)
	}
	return nil
}

// presencePlan is what missingPath looks at in one struct type: only the
// fields that hold (or contain) pointers, so a body of plain values costs
// one cached lookup.
type presencePlan struct {
	fields []planField
}

type planField struct {
	index    int
	name     string
	optional bool
}

var presencePlans sync.Map // reflect.Type -> *presencePlan

func planFor(t reflect.Type) *presencePlan {
	if p, ok := presencePlans.Load(t); ok {
		return p.(*presencePlan)
	}
	p := &presencePlan{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || !holdsPointers(f.Type, map[reflect.Type]bool{}) {
			continue
		}
		p.fields = append(p.fields, planField{index: i, name: f.Name, optional: f.Tag.Get("fsm") == "optional"})
	}
	presencePlans.Store(t, p)
	return p
}

// holdsPointers reports whether a value of t can contain a pointer to a
// struct (seen breaks cycles such as a struct that points to its type).
func holdsPointers(t reflect.Type, seen map[reflect.Type]bool) bool {
	switch t.Kind() {
	case reflect.Pointer:
		return t.Elem().Kind() == reflect.Struct || holdsPointers(t.Elem(), seen)
	case reflect.Slice, reflect.Array, reflect.Map:
		return holdsPointers(t.Elem(), seen)
	case reflect.Struct:
		if seen[t] {
			return false
		}
		seen[t] = true
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && holdsPointers(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// missingPath walks v and returns the path of the first missing required
// object ("Networks[0]", "Router"), or "".
func missingPath(v reflect.Value, path string) string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return strings.TrimPrefix(path, ".")
		}
		return missingPath(v.Elem(), path)
	case reflect.Struct:
		for _, f := range planFor(v.Type()).fields {
			fv := v.Field(f.index)
			if f.optional && fv.Kind() == reflect.Pointer && fv.IsNil() {
				continue
			}
			if p := missingPath(fv, path+"."+f.name); p != "" {
				return p
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if p := missingPath(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Map:
		// Map order is random: report the first missing key in sorted
		// order so every replica's error text is the same.
		var bad []string
		it := v.MapRange()
		for it.Next() {
			if p := missingPath(it.Value(), fmt.Sprintf("%s[%v]", path, it.Key())); p != "" {
				bad = append(bad, p)
			}
		}
		if len(bad) > 0 {
			return minString(bad)
		}
	}
	return ""
}

func minString(s []string) string {
	m := s[0]
	for _, x := range s[1:] {
		m = min(m, x)
	}
	return m
}

// recoverMissing turns a missingObject panic from mustDecode into the
// handler's error; any other panic goes on (a deliberate stop or a bug).
func recoverMissing(err *error) {
	p := recover()
	if p == nil {
		return
	}
	if m, ok := p.(missingObject); ok {
		*err = m.err
		return
	}
	panic(p)
}

// runDecoded runs h, returning a missing object found while it decodes
// its body as its error.
func runDecoded(h handler, txn *memdb.Txn, body []byte, index uint64) (err error) {
	defer recoverMissing(&err)
	return h(txn, body, index)
}

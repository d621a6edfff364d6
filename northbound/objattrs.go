package northbound

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"

	"neutrino/fsm"
)

// parseObject parses an object whose resource has structured attributes
// (lists of objects, dicts) next to the plain ones attrSpec handles: those
// named in structured are returned raw for the resource to parse, after
// the same POST/PUT permission check.
func parseObject(obj map[string]json.RawMessage, specs, structured map[string]attrSpec, post bool) (attrs, map[string]json.RawMessage, error) {
	plain := make(map[string]json.RawMessage, len(obj))
	raw := map[string]json.RawMessage{}
	for k, v := range obj {
		spec, ok := structured[k]
		if !ok {
			plain[k] = v
			continue
		}
		if post && !spec.Post {
			return nil, nil, badRequest("Attribute '%s' not allowed in POST", k)
		}
		if !post && !spec.Put {
			return nil, nil, badRequest("Cannot update read-only attribute %s", k)
		}
		raw[k] = v
	}
	a, err := parseAttrs(plain, specs, post)
	if err != nil {
		return nil, nil, err
	}
	return a, raw, nil
}

// merged returns the union of attribute maps (for filters, fields, sort).
func merged(specs ...map[string]attrSpec) map[string]attrSpec {
	out := map[string]attrSpec{}
	for _, s := range specs {
		maps.Copy(out, s)
	}
	return out
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// decodeList decodes a JSON list of objects into out, strictly.
func decodeList(name string, raw json.RawMessage, out any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return badRequest("Invalid input for %s. Reason: %v.", name, err)
	}
	return nil
}

// nameUUID is a name-based (version 5 style, SHA-1) UUID: the same name
// always gives the same id, so objects that must exist once per key (the
// default security group of a project) get an id every server agrees on.
func nameUUID(name string) string {
	h := sha1.Sum([]byte("neutrino:" + name))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// casUpdate is the compare-and-set loop of an update (see changeNetwork):
// read the object, check If-Match, change a copy, propose it with the
// version it was computed from, and retry when a concurrent write won.
type casSpec[T fsm.Object] struct {
	// read returns the object if the caller may see it, lookup if the
	// caller may change it.
	read    func(v *fsm.View) (T, error)
	lookup  func(v *fsm.View) (T, error)
	copy    func(T) T
	command fsm.CommandType
	request func(next T, prevIndex uint64) any
}

func casUpdate[T fsm.Object](s *Server, ctx context.Context, r *http.Request, spec casSpec[T], change func(v *fsm.View, next T) error) (T, uint64, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		v := s.fsm.State().Read()
		cur, err := spec.lookup(v)
		if err != nil {
			return zero, 0, err
		}
		m := cur.GetMeta()
		if err := checkIfMatch(r, m.RevisionNumber); err != nil {
			return zero, 0, err
		}
		next := spec.copy(cur)
		if err := change(v, next); err != nil {
			return zero, 0, err
		}
		nm := next.GetMeta()
		nm.RevisionNumber = m.RevisionNumber + 1
		nm.UpdatedAt = now()
		rev, err := s.propose(ctx, spec.command, spec.request(next, m.ModifyIndex))
		if fe, ok := fsm.AsError(err); ok && fe.Type == fsm.ErrTypeStaleUpdate && attempt < maxUpdateRetries {
			continue
		}
		if err != nil {
			return zero, 0, err
		}
		return next, rev, nil
	}
}

// tagsVia adapts a casSpec to the tag sub-resource.
func tagsVia[T fsm.Object](s *Server, spec func(ctx context.Context, id string) casSpec[T]) tagFunc {
	return func(ctx context.Context, r *http.Request, id string, change func([]string) ([]string, error)) ([]string, uint64, error) {
		sp := spec(ctx, id)
		if change == nil {
			obj, err := sp.read(s.fsm.State().Read())
			if err != nil {
				return nil, 0, err
			}
			return obj.GetMeta().Tags, 0, nil
		}
		obj, rev, err := casUpdate(s, ctx, r, sp, func(_ *fsm.View, next T) error {
			tags, err := change(next.GetMeta().Tags)
			if err != nil {
				return err
			}
			next.GetMeta().Tags = tags
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
		return obj.GetMeta().Tags, rev, nil
	}
}

// writeCreated answers a create with one object or, for bulk, the list.
func writeCreated(w http.ResponseWriter, singular, plural string, bulk bool, objs []map[string]any) {
	if !bulk {
		writeJSON(w, http.StatusCreated, map[string]any{singular: objs[0]})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{plural: objs})
}

// writeList answers a list request with the page and its links.
func writeList(w http.ResponseWriter, r *http.Request, lq *listQuery, collection string, objs []map[string]any) error {
	page, links, err := lq.apply(objs, r)
	if err != nil {
		return err
	}
	body := map[string]any{collection: nonNilObjs(page)}
	if links != nil {
		body[collection+"_links"] = links
	}
	writeJSONFast(w, http.StatusOK, body)
	return nil
}

// writeShow answers a show request, honouring ?fields=.
func writeShow(w http.ResponseWriter, r *http.Request, singular, collection string, specs map[string]attrSpec, obj map[string]any) error {
	out, err := selectFields(obj, r, specs, collection)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{singular: out})
	return nil
}

func strOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

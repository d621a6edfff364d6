package northbound

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// tagFunc reads (change == nil) or changes the tags of one object of a
// collection and returns the tags and the new revision.
type tagFunc func(ctx context.Context, r *http.Request, id string, change func([]string) ([]string, error)) ([]string, uint64, error)

// tagRoutes registers Neutron's tag sub-resource for a collection.
func (s *Server) tagRoutes(collection string, f tagFunc) {
	base := "/v2.0/" + collection + "/{id}/tags"
	s.neutron("GET "+base, func(w http.ResponseWriter, r *http.Request) error {
		tags, _, err := f(r.Context(), r, r.PathValue("id"), nil)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"tags": nonNil(tags)})
		return nil
	})
	s.neutron("GET "+base+"/{tag}", func(w http.ResponseWriter, r *http.Request) error {
		tags, _, err := f(r.Context(), r, r.PathValue("id"), nil)
		if err != nil {
			return err
		}
		if !slices.Contains(tags, r.PathValue("tag")) {
			return tagNotFound(r)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	s.neutron("PUT "+base, func(w http.ResponseWriter, r *http.Request) error {
		body, err := readBody(r)
		if err != nil {
			return err
		}
		var tags []string
		raw, ok := body["tags"]
		if !ok || len(body) != 1 || json.Unmarshal(raw, &tags) != nil || tags == nil {
			return badRequest("Invalid input for tags. Reason: the body must be {\"tags\": [...]}.")
		}
		if err := validTags(tags); err != nil {
			return err
		}
		got, rev, err := f(r.Context(), r, r.PathValue("id"), func([]string) ([]string, error) {
			return dedupTags(tags), nil
		})
		if err != nil {
			return err
		}
		setRevision(w, rev)
		writeJSON(w, http.StatusOK, map[string]any{"tags": nonNil(got)})
		return nil
	})
	s.neutron("PUT "+base+"/{tag}", func(w http.ResponseWriter, r *http.Request) error {
		tag := r.PathValue("tag")
		if err := validTags([]string{tag}); err != nil {
			return err
		}
		declare(r.Context(), &outcome{Status: http.StatusCreated})
		_, rev, err := f(r.Context(), r, r.PathValue("id"), func(cur []string) ([]string, error) {
			next := dedupTags(append(slices.Clone(cur), tag))
			if len(next) > 50 {
				return nil, validTags(next)
			}
			return next, nil
		})
		if err != nil {
			return err
		}
		setRevision(w, rev)
		w.WriteHeader(http.StatusCreated)
		return nil
	})
	s.neutron("DELETE "+base, func(w http.ResponseWriter, r *http.Request) error {
		_, rev, err := f(r.Context(), r, r.PathValue("id"), func([]string) ([]string, error) { return nil, nil })
		if err != nil {
			return err
		}
		setRevision(w, rev)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	s.neutron("DELETE "+base+"/{tag}", func(w http.ResponseWriter, r *http.Request) error {
		tag := r.PathValue("tag")
		_, rev, err := f(r.Context(), r, r.PathValue("id"), func(cur []string) ([]string, error) {
			if !slices.Contains(cur, tag) {
				return nil, tagNotFound(r)
			}
			return slices.DeleteFunc(slices.Clone(cur), func(t string) bool { return t == tag }), nil
		})
		if err != nil {
			return err
		}
		setRevision(w, rev)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func tagNotFound(r *http.Request) *apiError {
	return newError(http.StatusNotFound, "TagNotFound", "Tag %s could not be found for resource %s.",
		r.PathValue("tag"), r.PathValue("id"))
}

// checkIfMatch enforces "If-Match: revision_number=N" (Neutron's
// revision-if-match extension): 412 unless the current revision is N.
func checkIfMatch(r *http.Request, current uint64) error {
	h := r.Header.Get("If-Match")
	if h == "" {
		return nil
	}
	var wanted []string
	for _, part := range strings.Split(h, ",") {
		part = strings.TrimSpace(part)
		v, ok := strings.CutPrefix(part, "revision_number=")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return badRequest("Invalid If-Match constraint %q", part)
		}
		if n == current {
			return nil
		}
		wanted = append(wanted, v)
	}
	if len(wanted) == 0 {
		return nil
	}
	return newError(http.StatusPreconditionFailed, "RevisionNumberConstraintFailed",
		"Constrained to %s, but current revision is %d", strings.Join(wanted, ","), current)
}

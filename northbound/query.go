package northbound

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// reservedParams are query parameters that are not attribute filters.
var reservedParams = map[string]bool{
	"fields": true, "limit": true, "marker": true, "page_reverse": true,
	"sort_key": true, "sort_dir": true, "tags": true, "tags-any": true,
	"not-tags": true, "not-tags-any": true, "stale": true,
	// wait=realized is for writes; a read ignores it.
	"wait": true,
}

// listQuery is a parsed list request: filters, tag filters, sort, paging
// and field selection, applied to rendered objects so that every resource
// gets the same semantics.
type listQuery struct {
	filters    map[string][]string
	tagsAll    []string
	tagsAny    []string
	notAll     []string
	notAny     []string
	sortKeys   []string
	sortDesc   []bool
	limit      int
	marker     string
	reverse    bool
	fields     []string
	project    bool
	collection string
}

func splitValues(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func parseListQuery(q url.Values, collection string, known map[string]attrSpec) (*listQuery, error) {
	lq := &listQuery{filters: map[string][]string{}, collection: collection}
	for k, vals := range q {
		if reservedParams[k] {
			continue
		}
		if _, ok := known[k]; !ok {
			return nil, badRequest("%s is invalid attribute for filtering", k)
		}
		lq.filters[k] = vals
	}
	lq.tagsAll = splitValues(q["tags"])
	lq.tagsAny = splitValues(q["tags-any"])
	lq.notAll = splitValues(q["not-tags"])
	lq.notAny = splitValues(q["not-tags-any"])
	lq.fields, lq.project = knownFields(q["fields"], known)
	dirs := q["sort_dir"]
	for i, k := range q["sort_key"] {
		if _, ok := known[k]; !ok {
			return nil, badRequest("%s is an invalid attribute for sort_key", k)
		}
		desc := false
		if i < len(dirs) {
			switch dirs[i] {
			case "asc":
			case "desc":
				desc = true
			default:
				return nil, badRequest("%s is an invalid value for sort_dir, valid values are 'asc' and 'desc'", dirs[i])
			}
		}
		lq.sortKeys = append(lq.sortKeys, k)
		lq.sortDesc = append(lq.sortDesc, desc)
	}
	if len(dirs) > len(q["sort_key"]) {
		return nil, badRequest("The number of sort_keys and sort_dirs must be the same")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, badRequest("Limit must be an integer 0 or greater and not '%s'", s)
		}
		lq.limit = n
	}
	lq.marker = q.Get("marker")
	lq.reverse = strings.EqualFold(q.Get("page_reverse"), "true")
	return lq, nil
}

// knownFields is the ?fields= selection: the names of known attributes
// among those asked for, and whether any was asked for at all. Neutron
// ignores names it does not know (openstackclient's `port list --long`
// asks for security_group_ids), so an unknown name is dropped, not an
// error; hidden attributes are not in known, so they stay hidden.
func knownFields(vals []string, known map[string]attrSpec) ([]string, bool) {
	asked := splitValues(vals)
	var out []string
	for _, f := range asked {
		if _, ok := known[f]; ok {
			out = append(out, f)
		}
	}
	return out, len(asked) > 0
}

// filterValue is how an attribute value compares with a filter string.
func filterValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case uint64:
		return strconv.FormatUint(x, 10)
	default:
		return fmt.Sprint(x)
	}
}

func (lq *listQuery) matches(obj map[string]any) bool {
	for k, vals := range lq.filters {
		got := filterValue(obj[k])
		ok := false
		for _, want := range vals {
			if got == want || (isBool(obj[k]) && strings.EqualFold(got, want)) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(lq.tagsAll)+len(lq.tagsAny)+len(lq.notAll)+len(lq.notAny) > 0 {
		tags := map[string]bool{}
		if ts, ok := obj["tags"].([]string); ok {
			for _, t := range ts {
				tags[t] = true
			}
		}
		if len(lq.tagsAll) > 0 && !hasAll(tags, lq.tagsAll) {
			return false
		}
		if len(lq.tagsAny) > 0 && !hasAny(tags, lq.tagsAny) {
			return false
		}
		if len(lq.notAll) > 0 && hasAll(tags, lq.notAll) {
			return false
		}
		if len(lq.notAny) > 0 && hasAny(tags, lq.notAny) {
			return false
		}
	}
	return true
}

func isBool(v any) bool { _, ok := v.(bool); return ok }

func hasAll(set map[string]bool, want []string) bool {
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}

func hasAny(set map[string]bool, want []string) bool {
	for _, w := range want {
		if set[w] {
			return true
		}
	}
	return false
}

func compareValues(a, b any) int {
	switch x := a.(type) {
	case int:
		if y, ok := b.(int); ok {
			return cmpOrdered(x, y)
		}
	case uint64:
		if y, ok := b.(uint64); ok {
			return cmpOrdered(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			return cmpOrdered(boolInt(x), boolInt(y))
		}
	}
	return strings.Compare(filterValue(a), filterValue(b))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func cmpOrdered[T int | uint64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// apply filters, sorts (by the sort keys, then id, so paging is stable),
// pages and projects the objects, and returns the page and its links.
func (lq *listQuery) apply(objs []map[string]any, r *http.Request) ([]map[string]any, []map[string]string, error) {
	if lq.marker != "" && !hasID(objs, lq.marker) {
		return nil, nil, markerNotFound(lq.collection, lq.marker)
	}
	out := objs[:0:0]
	for _, o := range objs {
		if lq.matches(o) {
			out = append(out, o)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		for k, key := range lq.sortKeys {
			c := compareValues(out[i][key], out[j][key])
			if c != 0 {
				return (c < 0) != lq.sortDesc[k]
			}
		}
		return out[i]["id"].(string) < out[j]["id"].(string)
	})
	var links []map[string]string
	if lq.limit > 0 || lq.marker != "" {
		out, links = lq.page(out, r)
	}
	if lq.project {
		for i, o := range out {
			p := make(map[string]any, len(lq.fields))
			for _, f := range lq.fields {
				p[f] = o[f]
			}
			out[i] = p
		}
	}
	return out, links, nil
}

// hasID says whether an object with this id is among objs.
func hasID(objs []map[string]any, id string) bool {
	for _, o := range objs {
		if o["id"] == id {
			return true
		}
	}
	return false
}

// notFoundNames are the Neutron resource names of the core collections, for
// the <Resource>NotFound error a marker naming no object gets.
var notFoundNames = map[string]string{
	"networks": "Network", "subnets": "Subnet", "ports": "Port", "routers": "Router",
	"floatingips": "FloatingIP", "security_groups": "SecurityGroup",
	"security_group_rules": "SecurityGroupRule",
}

// markerNotFound is Neutron's answer to a marker that names no object the
// caller can see: its paging looks the marker up like a show does (404),
// rather than silently listing from the start.
func markerNotFound(collection, id string) *apiError {
	if name, ok := notFoundNames[collection]; ok {
		return newError(http.StatusNotFound, name+"NotFound", "%s %s could not be found.", name, id)
	}
	return newError(http.StatusNotFound, "ObjectNotFound", "Object %s not found.", id)
}

func (lq *listQuery) page(sorted []map[string]any, r *http.Request) ([]map[string]any, []map[string]string) {
	start, end := 0, len(sorted)
	if lq.marker != "" {
		pos := -1
		for i, o := range sorted {
			if o["id"] == lq.marker {
				pos = i
				break
			}
		}
		if lq.reverse {
			if pos >= 0 {
				end = pos
			}
		} else if pos >= 0 {
			start = pos + 1
		}
	}
	more := false
	if lq.limit > 0 && end-start > lq.limit {
		more = true
		if lq.reverse {
			start = end - lq.limit
		} else {
			end = start + lq.limit
		}
	}
	page := sorted[start:end]
	var links []map[string]string
	if len(page) == 0 {
		return page, links
	}
	first, last := page[0]["id"].(string), page[len(page)-1]["id"].(string)
	nextExists := (!lq.reverse && more) || (lq.reverse && lq.marker != "")
	prevExists := (lq.reverse && more) || (!lq.reverse && lq.marker != "")
	if nextExists {
		links = append(links, map[string]string{"rel": "next", "href": pageLink(r, last, false)})
	}
	if prevExists {
		links = append(links, map[string]string{"rel": "previous", "href": pageLink(r, first, true)})
	}
	return page, links
}

func pageLink(r *http.Request, marker string, reverse bool) string {
	q := r.URL.Query()
	q.Set("marker", marker)
	if reverse {
		q.Set("page_reverse", "True")
	} else {
		q.Del("page_reverse")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}).String()
}

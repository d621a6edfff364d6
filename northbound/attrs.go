package northbound

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxBodyBytes bounds a request body; bulk creates of thousands of objects
// fit well below it.
const maxBodyBytes = 8 << 20

type attrKind int

const (
	attrString attrKind = iota
	attrBool
	attrInt
	attrStrings
)

// attrSpec describes one attribute of a resource as Neutron's attribute
// maps do: its type and whether POST and PUT may set it.
type attrSpec struct {
	Kind     attrKind
	Post     bool
	Put      bool
	Nullable bool
	MaxLen   int
	// UUID marks an id attribute Neutron validates as a UUID (type:uuid),
	// so a malformed one is a 400, not a lookup that answers 404.
	UUID bool
}

// attrs are the parsed attributes of one object in a request body; a key is
// present only when the request set it. A null value is stored as nil.
type attrs map[string]any

func (a attrs) str(k string) (string, bool) {
	v, ok := a[k]
	if !ok || v == nil {
		return "", ok
	}
	return v.(string), true
}

func (a attrs) boolean(k string) (bool, bool) {
	v, ok := a[k]
	if !ok || v == nil {
		return false, ok
	}
	return v.(bool), true
}

func (a attrs) integer(k string) (int, bool) {
	v, ok := a[k]
	if !ok || v == nil {
		return 0, ok
	}
	return v.(int), true
}

func (a attrs) strings(k string) ([]string, bool) {
	v, ok := a[k]
	if !ok || v == nil {
		return nil, ok
	}
	return v.([]string), true
}

// readBody reads a JSON object body strictly: malformed JSON is Neutron's
// MalformedRequestBody.
func readBody(r *http.Request) (map[string]json.RawMessage, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, badRequest("Failed to read the request body: %v", err)
	}
	if len(data) > maxBodyBytes {
		return nil, newError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
			"Request body is larger than %d bytes.", maxBodyBytes)
	}
	if err := validText(data); err != nil {
		return nil, err
	}
	var body map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&body); err != nil || body == nil {
		return nil, newError(http.StatusBadRequest, "MalformedRequestBody",
			"Malformed request body: %s", malformedReason(err))
	}
	if dec.More() {
		return nil, newError(http.StatusBadRequest, "MalformedRequestBody",
			"Malformed request body: trailing data after the JSON object")
	}
	return body, nil
}

// validText refuses a body that is not valid UTF-8, or whose JSON escapes
// name a lone UTF-16 surrogate: Go's decoder would silently turn either
// into U+FFFD and store a string the client never sent, where Neutron
// fails to decode the body.
func validText(data []byte) error {
	if !utf8.Valid(data) {
		i := 0
		for i < len(data) {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return newError(http.StatusBadRequest, "MalformedRequestBody",
			"Malformed request body: invalid UTF-8 at byte %d", i)
	}
	for i := 0; i < len(data); i++ {
		// Jump to the next backslash: escapes are rare in most bodies.
		j := bytes.IndexByte(data[i:], '\\')
		if j < 0 {
			break
		}
		i += j
		if i+1 >= len(data) {
			break
		}
		if data[i+1] != 'u' {
			i++ // an escaped character, maybe a backslash: skip it
			continue
		}
		r, ok := hexRune(data, i+2)
		if !ok || !utf16.IsSurrogate(r) {
			i++
			continue
		}
		if r < 0xdc00 && i+11 < len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
			if low, ok := hexRune(data, i+8); ok && low >= 0xdc00 && low <= 0xdfff {
				i += 11 // a valid pair
				continue
			}
		}
		return newError(http.StatusBadRequest, "MalformedRequestBody",
			"Malformed request body: lone UTF-16 surrogate \\u%04x at byte %d", r, i)
	}
	return nil
}

// hexRune reads the four hex digits of a \u escape at data[i:].
func hexRune(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func malformedReason(err error) string {
	if err == nil {
		return "the body must be a JSON object"
	}
	return err.Error()
}

// objectsFromBody returns the object(s) of a create or update body:
// {"network": {...}} or, when bulk is allowed, {"networks": [{...}, ...]}.
func objectsFromBody(body map[string]json.RawMessage, singular, plural string, bulk bool) ([]map[string]json.RawMessage, error) {
	if len(body) != 1 {
		return nil, badRequest("Resource body required: expected exactly one key, '%s'%s", singular,
			map[bool]string{true: " or '" + plural + "'", false: ""}[bulk])
	}
	if raw, ok := body[singular]; ok {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return nil, badRequest("Resource body required: '%s' must be a JSON object", singular)
		}
		return []map[string]json.RawMessage{obj}, nil
	}
	if raw, ok := body[plural]; ok && bulk {
		var objs []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &objs); err != nil {
			return nil, badRequest("Resources required: '%s' must be a list of JSON objects", plural)
		}
		if len(objs) == 0 {
			return nil, badRequest("Resources required: '%s' is empty", plural)
		}
		for _, o := range objs {
			if o == nil {
				return nil, badRequest("Resources required: '%s' must be a list of JSON objects", plural)
			}
		}
		return objs, nil
	}
	for k := range body {
		return nil, badRequest("Unrecognized attribute(s) '%s'", k)
	}
	return nil, badRequest("Resource body required")
}

// readOne reads a request's body as one object under singular (no bulk
// form) and parses it against specs, for a create (post) or an update.
func readOne(r *http.Request, singular, plural string, specs map[string]attrSpec, post bool) (attrs, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	objs, err := objectsFromBody(body, singular, plural, false)
	if err != nil {
		return nil, err
	}
	return parseAttrs(objs[0], specs, post)
}

// parseAttrs checks an object's attributes against the resource's specs:
// unknown names, read-only attributes and wrong types are rejected.
func parseAttrs(obj map[string]json.RawMessage, specs map[string]attrSpec, post bool) (attrs, error) {
	var unknown []string
	for k := range obj {
		if _, ok := specs[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, badRequest("Unrecognized attribute(s) '%s'", strings.Join(unknown, ", "))
	}
	out := attrs{}
	for k, raw := range obj {
		spec := specs[k]
		if post && !spec.Post {
			return nil, badRequest("Attribute '%s' not allowed in POST", k)
		}
		if !post && !spec.Put {
			return nil, badRequest("Cannot update read-only attribute %s", k)
		}
		v, err := parseValue(k, raw, spec)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

func parseValue(name string, raw json.RawMessage, spec attrSpec) (any, error) {
	if string(bytes.TrimSpace(raw)) == "null" {
		if spec.Nullable {
			return nil, nil
		}
		return nil, badRequest("Invalid input for %s. Reason: None is not a valid value.", name)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, badRequest("Invalid input for %s. Reason: %v.", name, err)
	}
	switch spec.Kind {
	case attrString:
		s, ok := v.(string)
		if !ok {
			return nil, badRequest("Invalid input for %s. Reason: '%s' is not a valid string.", name, string(raw))
		}
		if spec.MaxLen > 0 && len(s) > spec.MaxLen {
			return nil, badRequest("Invalid input for %s. Reason: '%s' exceeds maximum length of %d.", name, s, spec.MaxLen)
		}
		if spec.UUID && !validUUID(s) {
			return nil, badRequest("Invalid input for %s. Reason: '%s' is not a valid UUID.", name, s)
		}
		return s, nil
	case attrBool:
		switch b := v.(type) {
		case bool:
			return b, nil
		case string:
			switch strings.ToLower(b) {
			case "true", "1":
				return true, nil
			case "false", "0":
				return false, nil
			}
		}
		return nil, badRequest("Invalid input for %s. Reason: '%s' is not a valid boolean value.", name, string(raw))
	case attrInt:
		var s string
		switch n := v.(type) {
		case json.Number:
			s = n.String()
		case string:
			s = n
		}
		i, err := strconv.Atoi(s)
		if err != nil {
			return nil, badRequest("Invalid input for %s. Reason: '%s' is not an integer.", name, string(raw))
		}
		return i, nil
	case attrStrings:
		list, ok := v.([]any)
		if !ok {
			return nil, badRequest("Invalid input for %s. Reason: '%s' is not a list.", name, string(raw))
		}
		out := make([]string, 0, len(list))
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return nil, badRequest("Invalid input for %s. Reason: '%v' is not a valid string.", name, e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("attribute %s: unknown kind %d", name, spec.Kind)
}

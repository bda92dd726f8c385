package xdrtest

import (
	"fmt"
	"strings"
)

// route is a parsed route pattern such as "POST /api/machines/{id}/isolate".
type route struct {
	method   string   // "" matches any method
	segments []string // path segments after the leading "/"
}

// parseRoute parses "METHOD /path" or "/path". It returns an error for a
// pattern without a leading "/", with a query string, or with an empty method.
func parseRoute(pattern string) (route, error) {
	var method, path string
	trimmed := strings.TrimSpace(pattern)
	if strings.HasPrefix(trimmed, "/") {
		path = trimmed
	} else {
		var found bool
		method, path, found = strings.Cut(trimmed, " ")
		if !found || method == "" {
			return route{}, fmt.Errorf("xdrtest: invalid route %q: want \"METHOD /path\" or \"/path\"", pattern)
		}
		path = strings.TrimSpace(path)
		if !strings.HasPrefix(path, "/") {
			return route{}, fmt.Errorf("xdrtest: invalid route %q: the path must start with \"/\"", pattern)
		}
	}
	if strings.ContainsAny(path, "?# ") {
		return route{}, fmt.Errorf("xdrtest: invalid route %q: the path must not contain a query, a fragment or spaces", pattern)
	}
	return route{method: strings.ToUpper(method), segments: splitPath(path)}, nil
}

// mustParseRoute is parseRoute for the exported methods, which panic on an
// invalid pattern because it is a mistake in the calling test.
func mustParseRoute(pattern string) route {
	rt, err := parseRoute(pattern)
	if err != nil {
		panic(err)
	}
	return rt
}

// splitPath returns the segments of a path that starts with "/".
func splitPath(path string) []string {
	return strings.Split(strings.TrimPrefix(path, "/"), "/")
}

// matchSegments reports whether path segments from splitPath match the
// route. A route segment in braces, such as "{id}", matches any one non-empty
// segment. Literal segments match ASCII case-insensitively, so
// "/api/Machines" matches the route "/api/machines".
func (rt route) matchSegments(got []string) bool {
	if len(got) != len(rt.segments) {
		return false
	}
	for i, want := range rt.segments {
		if isPlaceholder(want) {
			if got[i] == "" {
				return false
			}
		} else if !strings.EqualFold(got[i], want) {
			return false
		}
	}
	return true
}

// match reports whether a request with this method and path segments
// matches the route. Methods compare case-insensitively.
func (rt route) match(method string, got []string) bool {
	if rt.method != "" && !strings.EqualFold(rt.method, method) {
		return false
	}
	return rt.matchSegments(got)
}

// params returns the path segments that the route's placeholders matched,
// in order. It assumes that matchSegments(got) is true.
func (rt route) params(got []string) []string {
	var out []string
	for i, want := range rt.segments {
		if isPlaceholder(want) {
			out = append(out, got[i])
		}
	}
	return out
}

// key returns a canonical form of the route, so that "get /api/machines/{x}"
// and "GET /api/Machines/{id}" share one fault queue.
func (rt route) key() string {
	segments := make([]string, len(rt.segments))
	for i, seg := range rt.segments {
		if isPlaceholder(seg) {
			segments[i] = "{}"
		} else {
			segments[i] = strings.ToLower(seg)
		}
	}
	return rt.method + " /" + strings.Join(segments, "/")
}

func isPlaceholder(segment string) bool {
	return len(segment) >= 2 && segment[0] == '{' && segment[len(segment)-1] == '}'
}

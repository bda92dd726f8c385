package xdrretry

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Challenge is one WWW-Authenticate challenge of a 401 response (RFC 9110
// section 11.6.1), such as the continuous access evaluation challenge that
// Graph sends when a token lacks required claims:
//
//	Bearer realm="", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsi..."
type Challenge struct {
	// Scheme is the authentication scheme, such as "Bearer".
	Scheme string

	// Params holds the auth-params with lower-case names. A token68
	// challenge such as "Basic dXNlcg==" has the single name "token68".
	Params map[string]string

	// Claims is the JSON claims request decoded from the base64 "claims"
	// parameter, or the parameter as sent when it is not base64. A refresh
	// function passes it to the token service to get a token that satisfies
	// the claims.
	Claims string
}

// Param returns the value of the named auth-param, or "".
func (c *Challenge) Param(name string) string {
	if c == nil {
		return ""
	}
	return c.Params[strings.ToLower(name)]
}

// parseChallenge returns the first Bearer challenge among the
// WWW-Authenticate values, else the first challenge, else nil.
func parseChallenge(values []string) *Challenge {
	var first *Challenge
	for _, v := range values {
		for _, c := range parseChallenges(v) {
			if strings.EqualFold(c.Scheme, "Bearer") {
				return c
			}
			if first == nil {
				first = c
			}
		}
	}
	return first
}

// parseChallenges parses one WWW-Authenticate value, which may hold several
// challenges. It is lenient where servers are: parameter values may be
// unquoted URLs, quoted values may contain "=" padding and commas, and text
// it cannot parse is skipped instead of failing the whole header.
func parseChallenges(value string) []*Challenge {
	var (
		out []*Challenge
		cur *Challenge
	)
	s := value
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			break
		}
		name, rest := cutToken(s)
		if name == "" {
			// Skip one character that cannot start a token.
			s = s[1:]
			continue
		}
		rest = strings.TrimLeft(rest, " \t")

		if strings.HasPrefix(rest, "=") && cur != nil && !isToken68End(rest) {
			val, after := cutValue(strings.TrimLeft(rest[1:], " \t"))
			cur.Params[strings.ToLower(name)] = val
			s = after
			continue
		}

		cur = &Challenge{Scheme: name, Params: map[string]string{}}
		out = append(out, cur)
		s = rest
		if t68, after, ok := cutToken68(s); ok {
			cur.Params["token68"] = t68
			s = after
		}
	}
	for _, c := range out {
		c.Claims = decodeClaims(c.Params["claims"])
	}
	return out
}

// cutToken splits s after its leading token (RFC 9110 tchar).
func cutToken(s string) (token, rest string) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isToken68End reports whether rest, which starts with "=", is only the
// padding at the end of a token68 rather than the start of a value.
func isToken68End(rest string) bool {
	i := 0
	for i < len(rest) && rest[i] == '=' {
		i++
	}
	tail := strings.TrimLeft(rest[i:], " \t")
	return tail == "" || tail[0] == ','
}

// cutToken68 reads a token68 (base64-like credentials) after a scheme. It
// fails when what follows is an auth-param instead. A lone token followed by
// the end or a comma is read as a token68, as RFC 9110 reads it.
func cutToken68(s string) (t68, rest string, ok bool) {
	i := 0
	for i < len(s) && (isTokenChar(s[i]) || s[i] == '/' || s[i] == '+') {
		i++
	}
	j := i
	for j < len(s) && s[j] == '=' {
		j++
	}
	if i == 0 {
		return "", s, false
	}
	tail := strings.TrimLeft(s[j:], " \t")
	if tail != "" && tail[0] != ',' {
		return "", s, false
	}
	return s[:j], tail, true
}

// cutValue reads a parameter value: a quoted-string with backslash escapes,
// or an unquoted run up to the next comma or space.
func cutValue(s string) (value, rest string) {
	if !strings.HasPrefix(s, `"`) {
		end := strings.IndexAny(s, ", \t")
		if end < 0 {
			return s, ""
		}
		return s[:end], s[end:]
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(s[i])
		}
	}
	// An unterminated quoted-string runs to the end of the header.
	return b.String(), ""
}

// decodeClaims decodes a base64 claims parameter into its JSON text. Entra
// ID sends standard base64 with padding; the other alphabets are accepted
// too. A value that does not decode to JSON is returned as sent.
func decodeClaims(raw string) string {
	if raw == "" {
		return ""
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if b, err := enc.DecodeString(raw); err == nil && json.Valid(b) {
			return string(b)
		}
	}
	return raw
}

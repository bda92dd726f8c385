package xdrretry

import (
	"testing"
)

func TestParseChallengeCAE(t *testing.T) {
	// A continuous access evaluation challenge as Graph sends it: an
	// unquoted URL parameter and "=" padding inside a quoted value.
	header := `Bearer realm="", authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize, client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTY1NzgzNDQxNyJ9fX0="`
	c := parseChallenge([]string{header})
	if c == nil {
		t.Fatal("no challenge parsed")
	}
	want := map[string]string{
		"realm":             "",
		"authorization_uri": "https://login.microsoftonline.com/common/oauth2/authorize",
		"client_id":         "00000003-0000-0000-c000-000000000000",
		"error":             "insufficient_claims",
		"claims":            "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTY1NzgzNDQxNyJ9fX0=",
	}
	if c.Scheme != "Bearer" {
		t.Errorf("scheme = %q, want Bearer", c.Scheme)
	}
	for k, v := range want {
		got, ok := c.Params[k]
		if !ok || got != v {
			t.Errorf("param %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	if len(c.Params) != len(want) {
		t.Errorf("params = %v, want exactly %v", c.Params, want)
	}
	wantClaims := `{"access_token":{"nbf":{"essential":true, "value":"1657834417"}}}`
	if c.Claims != wantClaims {
		t.Errorf("claims = %q, want %q", c.Claims, wantClaims)
	}
	if c.Param("ERROR") != "insufficient_claims" {
		t.Errorf("Param is not case-insensitive")
	}
}

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   []Challenge
	}{
		{
			name:   "bearer with invalid_token",
			header: `Bearer error="invalid_token", error_description="The access token expired"`,
			want: []Challenge{{Scheme: "Bearer", Params: map[string]string{
				"error": "invalid_token", "error_description": "The access token expired"}}},
		},
		{
			name:   "two challenges",
			header: `Basic realm="x", Bearer realm="y", scope="a b"`,
			want: []Challenge{
				{Scheme: "Basic", Params: map[string]string{"realm": "x"}},
				{Scheme: "Bearer", Params: map[string]string{"realm": "y", "scope": "a b"}},
			},
		},
		{
			name:   "token68",
			header: `Negotiate dGVzdA==, Bearer`,
			want: []Challenge{
				{Scheme: "Negotiate", Params: map[string]string{"token68": "dGVzdA=="}},
				{Scheme: "Bearer", Params: map[string]string{}},
			},
		},
		{
			name:   "escapes and comma in quotes",
			header: `Bearer error_description="a \"quoted\", thing", error=x`,
			want: []Challenge{{Scheme: "Bearer", Params: map[string]string{
				"error_description": `a "quoted", thing`, "error": "x"}}},
		},
		{
			name:   "spaces around equals",
			header: `Bearer realm = "r" , error = e`,
			want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"realm": "r", "error": "e"}}},
		},
		{
			name:   "unterminated quote",
			header: `Bearer error="oops`,
			want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"error": "oops"}}},
		},
		{
			name:   "empty",
			header: ``,
			want:   nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseChallenges(tc.header)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d challenges %+v, want %d", len(got), got, len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Scheme != w.Scheme {
					t.Errorf("challenge %d scheme = %q, want %q", i, g.Scheme, w.Scheme)
				}
				if len(g.Params) != len(w.Params) {
					t.Errorf("challenge %d params = %v, want %v", i, g.Params, w.Params)
				}
				for k, v := range w.Params {
					if g.Params[k] != v {
						t.Errorf("challenge %d param %s = %q, want %q", i, k, g.Params[k], v)
					}
				}
			}
		})
	}
}

func TestDecodeClaims(t *testing.T) {
	tests := map[string]string{
		"eyJhIjoxfQ==": `{"a":1}`, // standard, padded
		"eyJhIjoxfQ":   `{"a":1}`, // unpadded
		`{"a":1}`:      `{"a":1}`, // already JSON
		"not base64!":  "not base64!",
		"":             "",
	}
	for raw, want := range tests {
		if got := decodeClaims(raw); got != want {
			t.Errorf("decodeClaims(%q) = %q, want %q", raw, got, want)
		}
	}
}

func FuzzParseChallenges(f *testing.F) {
	for _, seed := range []string{
		`Bearer realm="", authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize, error="insufficient_claims", claims="eyJhIjoxfQ=="`,
		`Basic realm="x", Bearer`, `Negotiate dGVzdA==`, `Bearer error="`, `="x"`, `,,, =`, `Bearer a=b=c`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		for _, c := range parseChallenges(header) {
			if c.Scheme == "" {
				t.Fatalf("challenge with empty scheme from %q", header)
			}
			if c.Params == nil {
				t.Fatalf("nil params from %q", header)
			}
		}
	})
}

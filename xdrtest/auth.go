package xdrtest

import (
	"crypto/rand"
	"net/http"
	"strings"
	"time"
)

// SetAuth sets whether requests need a bearer token from [Server.IssueToken].
// New servers require one.
func (s *Server) SetAuth(required bool) {
	s.mu.Lock()
	s.authRequired = required
	s.mu.Unlock()
}

// IssueToken returns a new random opaque bearer token that the server
// accepts for ttl from now. A ttl of zero or less gives a token that is
// already expired.
func (s *Server) IssueToken(ttl time.Duration) string {
	token := rand.Text()
	s.mu.Lock()
	s.tokens[token] = time.Now().Add(ttl)
	s.mu.Unlock()
	return token
}

// ExpireToken makes the server reject token as expired from now on. A token
// that the server never issued is rejected as expired too, rather than as
// unknown.
func (s *Server) ExpireToken(token string) {
	s.mu.Lock()
	s.tokens[token] = time.Time{}
	s.mu.Unlock()
}

// RevokeToken makes the server forget token, so that it is rejected as
// unknown, like a token that it never issued.
func (s *Server) RevokeToken(token string) {
	s.mu.Lock()
	delete(s.tokens, token)
	s.mu.Unlock()
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header, or "" when the header is missing or has another scheme. The scheme
// name is case-insensitive (RFC 9110 section 11.1).
func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// checkAuth returns a 401 response and true when the request needs a token
// and lacks a valid one. token is the request's bearer token or "".
func (s *Server) checkAuth(token string) (response, bool) {
	s.mu.Lock()
	required := s.authRequired
	expiry, issued := s.tokens[token]
	s.mu.Unlock()

	switch {
	case !required:
		return response{}, false
	case token == "":
		resp := errorResponse(http.StatusUnauthorized, "Unauthorized",
			"Unauthorized request - the request has no bearer access token")
		resp.header.Set("WWW-Authenticate", "Bearer")
		return resp, true
	case !issued:
		resp := errorResponse(http.StatusUnauthorized, "Unauthorized",
			"Unauthorized request - the access token is invalid")
		resp.header.Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="The access token is invalid"`)
		return resp, true
	case !time.Now().Before(expiry):
		resp := errorResponse(http.StatusUnauthorized, "Unauthorized",
			"Unauthorized request - the access token expired")
		resp.header.Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="The access token expired"`)
		return resp, true
	}
	return response{}, false
}

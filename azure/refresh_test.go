package azure

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/xdrretry/xdrretry"
)

func TestRefreshPassesChallengeClaims(t *testing.T) {
	srv, base := newTLSAPI(t)
	srv.Script("GET /api/alerts", caeFault())
	cred := &cachingCredential{srv: srv}
	client := &http.Client{Transport: NewTransport(cred, base, []string{GraphScope}, fastRetries)}

	resp, err := client.Get(srv.URL + "/api/alerts")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	resp.Body.Close()

	calls := cred.Calls()
	if len(calls) != 2 {
		t.Fatalf("credential called %d times, want 2 (token, refresh)", len(calls))
	}
	if calls[1].Claims != caeClaims {
		t.Errorf("refresh claims = %q, want the challenge's %q", calls[1].Claims, caeClaims)
	}
	if !calls[1].EnableCAE {
		t.Errorf("refresh EnableCAE = false, want true")
	}
	tokens := tokensSeen(srv)
	if len(tokens) != 2 || tokens[0] == tokens[1] {
		t.Errorf("server saw tokens %q, want two different ones", tokens)
	}
}

func TestRefreshForcesNewTokenOnPlain401(t *testing.T) {
	srv, base := newTLSAPI(t)
	cred := &cachingCredential{srv: srv}
	client := &http.Client{Transport: NewTransport(cred, base, []string{DefenderScope}, fastRetries)}

	resp, err := client.Get(srv.URL + "/api/machines")
	if err != nil {
		t.Fatalf("first Get: %v", err)
	}
	resp.Body.Close()
	first := cred.Current()
	srv.ExpireToken(first)

	resp, err = client.Get(srv.URL + "/api/machines")
	if err != nil {
		t.Fatalf("Get after the token expired: %v", err)
	}
	resp.Body.Close()

	calls := cred.Calls()
	if len(calls) != 3 {
		t.Fatalf("credential called %d times, want 3 (token, cached token, refresh)", len(calls))
	}
	if !isForcedRefreshClaims(calls[2].Claims) {
		t.Errorf("refresh claims = %q, want an nbf claims request", calls[2].Claims)
	}
	want := []string{first, first, cred.Current()}
	if got := tokensSeen(srv); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || want[2] == first {
		t.Errorf("server saw tokens %q, want %q with a new last token", got, want)
	}
}

func TestRefreshForcesOncePerInterval(t *testing.T) {
	srv, _ := newTLSAPI(t)
	cred := &cachingCredential{srv: srv}
	now := time.Unix(1_800_000_000, 0)
	r := &refresher{cred: cred, scopes: []string{DefenderScope}, now: func() time.Time { return now }}
	plain := &xdrretry.Error{StatusCode: http.StatusUnauthorized, Code: "Unauthorized"}

	steps := []struct {
		advance    time.Duration
		wantForced bool
	}{
		{0, true},
		{0, false},
		{ForcedRefreshInterval - time.Second, false},
		{time.Second, true},
		{time.Nanosecond, false},
	}
	for i, step := range steps {
		now = now.Add(step.advance)
		if _, err := r.refresh(context.Background(), plain); err != nil {
			t.Fatalf("step %d: refresh: %v", i, err)
		}
		calls := cred.Calls()
		claims := calls[len(calls)-1].Claims
		if forced := claims != ""; forced != step.wantForced {
			t.Errorf("step %d: claims = %q, want forced = %v", i, claims, step.wantForced)
		}
		if step.wantForced && claims != forcedRefreshClaims(now) {
			t.Errorf("step %d: claims = %q, want %q", i, claims, forcedRefreshClaims(now))
		}
	}
}

func TestRefreshChallengeNotRateLimited(t *testing.T) {
	srv, _ := newTLSAPI(t)
	cred := &cachingCredential{srv: srv}
	r := &refresher{cred: cred, scopes: []string{GraphScope}, now: time.Now}
	challenged := &xdrretry.Error{
		StatusCode: http.StatusUnauthorized,
		Challenge: &xdrretry.Challenge{
			Scheme: "Bearer",
			Params: map[string]string{"error": "insufficient_claims", "claims": "e30="},
			Claims: caeClaims,
		},
	}
	for i := range 3 {
		if _, err := r.refresh(context.Background(), challenged); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	for i, call := range cred.Calls() {
		if call.Claims != caeClaims {
			t.Errorf("call %d: claims = %q, want the challenge's", i, call.Claims)
		}
	}
}

func TestRefreshInsufficientClaimsWithoutClaims(t *testing.T) {
	srv, _ := newTLSAPI(t)
	cred := &cachingCredential{srv: srv}
	r := &refresher{cred: cred, scopes: []string{GraphScope}, now: time.Now}
	rejected := &xdrretry.Error{
		StatusCode: http.StatusUnauthorized,
		Challenge: &xdrretry.Challenge{
			Scheme: "Bearer",
			Params: map[string]string{"error": "insufficient_claims"},
		},
	}
	if _, err := r.refresh(context.Background(), rejected); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if claims := cred.Calls()[0].Claims; !isForcedRefreshClaims(claims) {
		t.Errorf("claims = %q, want a forced refresh's", claims)
	}
}

func TestRefreshRejectsNonJSONClaims(t *testing.T) {
	srv, _ := newTLSAPI(t)
	cred := &cachingCredential{srv: srv}
	r := &refresher{cred: cred, scopes: []string{GraphScope}, now: time.Now}
	rejected := &xdrretry.Error{
		StatusCode: http.StatusUnauthorized,
		Challenge: &xdrretry.Challenge{
			Scheme: "Bearer",
			Params: map[string]string{"error": "insufficient_claims", "claims": "not-base64"},
			Claims: "not-base64",
		},
	}
	_, err := r.refresh(context.Background(), rejected)
	if !errors.Is(err, errClaimsNotJSON) {
		t.Errorf("error = %v, want errClaimsNotJSON", err)
	}
	if n := len(cred.Calls()); n != 0 {
		t.Errorf("credential called %d times, want 0", n)
	}
}

func TestRefreshWrapsCredentialError(t *testing.T) {
	srv, _ := newTLSAPI(t)
	cred := &cachingCredential{srv: srv, err: errCredentialDown}
	refresh := NewRefresh(cred, DefenderScope)

	_, err := refresh(context.Background(), &xdrretry.Error{StatusCode: http.StatusUnauthorized})
	if !errors.Is(err, errCredentialDown) {
		t.Errorf("error = %v, want it to wrap the credential's error", err)
	}
}

func TestRefreshFailsWithinInterval(t *testing.T) {
	srv, base := newTLSAPI(t)
	cred := &cachingCredential{srv: srv}
	client := &http.Client{Transport: NewTransport(cred, base, []string{DefenderScope}, fastRetries)}

	resp, err := client.Get(srv.URL + "/api/machines")
	if err != nil {
		t.Fatalf("first Get: %v", err)
	}
	resp.Body.Close()

	// The first 401 forces a new token.
	srv.ExpireToken(cred.Current())
	resp, err = client.Get(srv.URL + "/api/machines")
	if err != nil {
		t.Fatalf("Get after the first 401: %v", err)
	}
	resp.Body.Close()

	// The second 401 comes within ForcedRefreshInterval, so the refresh
	// gets the cached token, which is the rejected one.
	srv.ExpireToken(cred.Current())
	_, err = client.Get(srv.URL + "/api/machines")
	if !errors.Is(err, xdrretry.ErrRefreshFailed) {
		t.Errorf("Get after the second 401: error = %v, want ErrRefreshFailed", err)
	}
	if n := srv.Count("GET /api/machines"); n != 4 {
		t.Errorf("server got %d requests, want 4", n)
	}
}

func TestForcedRefreshClaimsFormat(t *testing.T) {
	now := time.Unix(1_700_000_123, 0)
	var claims struct {
		AccessToken struct {
			NBF struct {
				Essential bool   `json:"essential"`
				Value     string `json:"value"`
			} `json:"nbf"`
		} `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(forcedRefreshClaims(now)), &claims); err != nil {
		t.Fatalf("claims are not JSON: %v", err)
	}
	if !claims.AccessToken.NBF.Essential {
		t.Errorf("nbf essential = false, want true")
	}
	if claims.AccessToken.NBF.Value != "1700000123" {
		t.Errorf("nbf value = %q, want %q", claims.AccessToken.NBF.Value, "1700000123")
	}
}

// isForcedRefreshClaims reports whether claims is a claims request from
// forcedRefreshClaims.
func isForcedRefreshClaims(claims string) bool {
	var c struct {
		AccessToken struct {
			NBF struct {
				Essential bool   `json:"essential"`
				Value     string `json:"value"`
			} `json:"nbf"`
		} `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(claims), &c); err != nil {
		return false
	}
	_, err := strconv.ParseInt(c.AccessToken.NBF.Value, 10, 64)
	return c.AccessToken.NBF.Essential && err == nil
}

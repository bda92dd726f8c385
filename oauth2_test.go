package xdrretry_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/xdrretry/xdrretry"
	"github.com/xdrretry/xdrretry/xdrtest"
)

// newTokenEndpoint starts a client credentials token endpoint on loopback
// that hands out tokens of api and counts its calls.
func newTokenEndpoint(t *testing.T, api *xdrtest.Server, calls *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": api.IssueToken(time.Hour),
			"token_type":   "Bearer",
			"expires_in":   3600,
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestOAuth2Stacking(t *testing.T) {
	api := xdrtest.NewServer()
	defer api.Close()
	var tokenCalls atomic.Int32
	endpoint := newTokenEndpoint(t, api, &tokenCalls)

	ctx := context.Background()
	cfg := &clientcredentials.Config{
		ClientID:     "app",
		ClientSecret: "secret",
		TokenURL:     endpoint.URL,
		Scopes:       []string{"https://api.securitycenter.microsoft.com/.default"},
	}
	src := cfg.TokenSource(ctx)
	client := &http.Client{Transport: &oauth2.Transport{
		Source: src,
		Base: xdrretry.New(nil,
			xdrretry.WithBackoff(time.Millisecond, time.Millisecond),
			xdrretry.WithTokenRefresh(xdrretry.RefreshFromTokenFunc(cfg.Token))),
	}}

	get := func() {
		t.Helper()
		resp, err := client.Get(api.URL + "/api/alerts")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get()

	// The service revokes the cached token early, as it does on a
	// continuous access evaluation event; oauth2.Transport still holds it.
	cached, _ := src.Token()
	api.ExpireToken(cached.AccessToken)
	get()
	get()

	if n := tokenCalls.Load(); n != 2 {
		t.Errorf("token endpoint called %d times, want 2 (first token, one refresh)", n)
	}
	var rejected int
	for _, rec := range api.Requests() {
		if rec.Status == http.StatusUnauthorized {
			rejected++
		}
	}
	if rejected != 1 {
		t.Errorf("%d requests were rejected, want 1: the stale token must not be sent again", rejected)
	}
}

func TestRefreshFromTokenSource(t *testing.T) {
	api := xdrtest.NewServer()
	defer api.Close()
	var tokenCalls atomic.Int32
	endpoint := newTokenEndpoint(t, api, &tokenCalls)
	cfg := &clientcredentials.Config{ClientID: "app", ClientSecret: "s", TokenURL: endpoint.URL}

	refresh := xdrretry.RefreshFromTokenSource(fetchingSource{cfg})
	token, err := refresh(context.Background(), &xdrretry.Error{})
	if err != nil || token == "" {
		t.Fatalf("refresh = %q, %v", token, err)
	}

	failing := xdrretry.RefreshFromTokenFunc(func(context.Context) (*oauth2.Token, error) { return nil, nil })
	if _, err := failing(context.Background(), &xdrretry.Error{}); err == nil {
		t.Errorf("a nil token did not fail the refresh")
	}
	broken := errors.New("endpoint down")
	failing = xdrretry.RefreshFromTokenFunc(func(context.Context) (*oauth2.Token, error) { return nil, broken })
	if _, err := failing(context.Background(), &xdrretry.Error{}); !errors.Is(err, broken) {
		t.Errorf("err = %v, want the fetch error", err)
	}
}

// fetchingSource is an oauth2.TokenSource that fetches a new token on each
// call.
type fetchingSource struct{ cfg *clientcredentials.Config }

func (f fetchingSource) Token() (*oauth2.Token, error) { return f.cfg.Token(context.Background()) }

package xdrretry

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const caeHeader = `Bearer realm="", authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize, client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTY1NzgzNDQxNyJ9fX0="`

// tokenServer accepts only the token "good" and responds 401 otherwise.
func tokenServer(t *testing.T, header ...string) *scriptServer {
	t.Helper()
	srv := newScriptServer(t)
	srv.fallback = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer good" {
			reply(200, "ok")(w, r)
			return
		}
		reply(401, `{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired or is not yet valid.","innerError":{"request-id":"`+trackingA+`","date":"2024-05-01T10:00:00"}}}`, header...)(w, r)
	}
	return srv
}

func TestRefreshOn401(t *testing.T) {
	srv := tokenServer(t, "WWW-Authenticate: "+caeHeader)
	var got *Error
	tr := fastTransport(WithTokenRefresh(func(ctx context.Context, rejected *Error) (string, error) {
		got = rejected
		return "good", nil
	}))
	req := mustRequest(t, http.MethodGet, srv.URL+"/v1.0/security/alerts_v2")
	req.Header.Set("Authorization", "Bearer expired")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	if got == nil {
		t.Fatal("refresh function not called")
	}
	if got.StatusCode != 401 || got.Code != "InvalidAuthenticationToken" || got.TrackingID != trackingA || got.Attempts != 1 {
		t.Errorf("rejected = %+v", got)
	}
	if got.Challenge == nil || got.Challenge.Param("error") != "insufficient_claims" {
		t.Fatalf("challenge = %+v", got.Challenge)
	}
	if !strings.Contains(got.Challenge.Claims, `"essential":true`) {
		t.Errorf("claims = %q, want the decoded JSON", got.Challenge.Claims)
	}
	seen := srv.requests()
	if len(seen) != 2 || seen[0].auth != "Bearer expired" || seen[1].auth != "Bearer good" {
		t.Errorf("requests = %+v", seen)
	}
}

func TestRefreshFailures(t *testing.T) {
	hookErr := errors.New("token endpoint unreachable")
	tests := []struct {
		name      string
		refresh   RefreshFunc
		wantCause error
		attempts  int
	}{
		{"no refresh function", nil, errNoRefresh, 1},
		{"refresh error", func(context.Context, *Error) (string, error) { return "", hookErr }, hookErr, 1},
		{"empty token", func(context.Context, *Error) (string, error) { return "", nil }, errEmptyToken, 1},
		{"same token", func(context.Context, *Error) (string, error) { return "expired", nil }, errSameToken, 1},
		{"panic", func(context.Context, *Error) (string, error) { panic("bad hook") }, errRefreshPanic, 1},
		{"goexit", func(context.Context, *Error) (string, error) { runtime.Goexit(); return "", nil }, errRefreshExited, 1},
		{"control characters", func(context.Context, *Error) (string, error) { return "bad\ntoken", nil }, errInvalidToken, 1},
		{"surrounding space", func(context.Context, *Error) (string, error) { return " token", nil }, errInvalidToken, 1},
		{"second 401", func(context.Context, *Error) (string, error) { return "also-bad", nil }, errSecond401, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := tokenServer(t)
			base := &idleCounter{Transport: &http.Transport{}}
			var opts []Option
			if tc.refresh != nil {
				opts = append(opts, WithTokenRefresh(tc.refresh))
			}
			client := &http.Client{Transport: New(base, opts...)}
			req := mustRequest(t, http.MethodGet, srv.URL+"/api/machines")
			req.Header.Set("Authorization", "Bearer expired")

			resp, err := client.Do(req)
			if resp != nil {
				t.Errorf("response returned with the error")
			}
			xerr := mustAsError(t, err)
			if !errors.Is(err, tc.wantCause) {
				t.Errorf("err = %v, want cause %v", err, tc.wantCause)
			}
			if !errors.Is(err, ErrRefreshFailed) || !errors.Is(err, ErrInvalidAuthenticationToken) {
				t.Errorf("errors.Is fails for ErrRefreshFailed or the code: %v", err)
			}
			if xerr.StatusCode != 401 || xerr.TrackingID != trackingA || xerr.Attempts != tc.attempts {
				t.Errorf("error = status %d tracking %q attempts %d", xerr.StatusCode, xerr.TrackingID, xerr.Attempts)
			}
			if n := len(srv.requests()); n != tc.attempts {
				t.Errorf("server saw %d requests, want %d", n, tc.attempts)
			}
			if n := base.closes.Load(); n != 0 {
				t.Errorf("CloseIdleConnections called %d times on the base", n)
			}
		})
	}
}

func TestRefreshHonoursCallerContext(t *testing.T) {
	srv := tokenServer(t)
	release := make(chan struct{})
	defer close(release)
	tr := fastTransport(WithTokenRefresh(func(ctx context.Context, _ *Error) (string, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "good", nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := mustRequest(t, http.MethodGet, srv.URL+"/api/alerts").WithContext(ctx)
	req.Header.Set("Authorization", "Bearer expired")
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the deadline", err)
	}
	mustAsError(t, err)
}

func TestInvalidTokenNotRemembered(t *testing.T) {
	srv := tokenServer(t)
	var calls int
	tr := fastTransport(WithTokenRefresh(func(context.Context, *Error) (string, error) {
		calls++
		return "bad\ntoken", nil
	}))
	for range 3 {
		req := mustRequest(t, http.MethodGet, srv.URL+"/api/alerts")
		req.Header.Set("Authorization", "Bearer expired")
		if _, err := tr.RoundTrip(req); !errors.Is(err, errInvalidToken) {
			t.Errorf("err = %v, want errInvalidToken", err)
		}
	}
	if calls != 3 {
		t.Errorf("refresh called %d times for 3 rejections, want 3: an invalid token must not be reused", calls)
	}
}

func TestStuckRefreshTimesOut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	cause := &Error{Code: "Unauthorized"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := callRefresh(ctx, func(context.Context, *Error) (string, error) {
		<-release // ignores its context
		return "late", nil
	}, cause)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the refresh context's deadline", err)
	}
}

func TestConcurrentRefreshShared(t *testing.T) {
	const callers = 50
	srv := tokenServer(t)
	var calls atomic.Int32
	started := make(chan struct{})
	var once sync.Once
	tr := fastTransport(WithTokenRefresh(func(ctx context.Context, _ *Error) (string, error) {
		calls.Add(1)
		once.Do(func() { close(started) })
		// Hold the refresh until every caller has been rejected, so that
		// they all wait on this one call.
		deadline := time.Now().Add(5 * time.Second)
		for len(srv.requests()) < callers && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		return "good", nil
	}))

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := mustRequest(t, http.MethodGet, srv.URL+"/api/alerts")
			req.Header.Set("Authorization", "Bearer expired")
			resp, err := tr.RoundTrip(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("refresh called %d times for %d callers rejected with one token, want 1", n, callers)
	}
	if n := len(srv.requests()); n != 2*callers {
		t.Errorf("server saw %d requests, want %d", n, 2*callers)
	}

	// A later request that still carries the rejected token goes out with
	// the new one and is not rejected.
	before := len(srv.requests())
	req := mustRequest(t, http.MethodGet, srv.URL+"/api/alerts")
	req.Header.Set("Authorization", "Bearer expired")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	seen := srv.requests()[before:]
	if len(seen) != 1 || seen[0].auth != "Bearer good" {
		t.Errorf("later request sent %+v, want one request with the new token", seen)
	}
	if req.Header.Get("Authorization") != "Bearer expired" {
		t.Errorf("caller's header changed")
	}
}

func TestTokenChainReplaced(t *testing.T) {
	var tk tokens
	tk.remember("a", "b")
	tk.remember("b", "c")
	for _, old := range []string{"a", "b"} {
		if got, ok := tk.current(old); !ok || got != "c" {
			t.Errorf("current(%q) = %q, %v; want c", old, got, ok)
		}
	}
	if _, ok := tk.current("c"); ok {
		t.Errorf("the newest token is marked as replaced")
	}
	for i := range 2 * maxReplacements {
		tk.remember(strings.Repeat("x", i+1), "y")
	}
	if n := int(tk.count.Load()); n > maxReplacements {
		t.Errorf("table holds %d tokens, bound %d", n, maxReplacements)
	}
}

func TestBearerToken(t *testing.T) {
	tests := map[string]string{
		"Bearer abc":    "abc",
		"bearer  abc ":  "abc",
		"Basic abc":     "",
		"Bearer":        "",
		"":              "",
		"BearerNoSpace": "",
	}
	for header, want := range tests {
		h := http.Header{}
		if header != "" {
			h.Set("Authorization", header)
		}
		if got := bearerToken(h); got != want {
			t.Errorf("bearerToken(%q) = %q, want %q", header, got, want)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdrretry/xdrretry/xdrtest"
)

// runForTest runs xdrcall with args and an environment that holds only
// env, and returns the exit status and both outputs.
func runForTest(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr, func(k string) string { return env[k] })
	return code, stdout.String(), stderr.String()
}

func TestTourShowsFourOutcomes(t *testing.T) {
	code, out, errOut := runForTest(t, nil, "-backoff", "1ms", "-backoff-max", "2ms")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	for _, want := range []string{
		"attempt 1: 500 InternalServerError, tracking ID ",
		"attempt 1: 429 TooManyRequests, tracking ID ",
		"attempt 1: 401 Unauthorized, tracking ID ",
		"refreshing the token and sending again",
		"attempt 1: 404 NotFound, tracking ID ",
		"not retried",
		"Summary: 4 calls, 7 attempts: 3 succeeded",
		"1 failed fast (tracking ID ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tour output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "attempt 2: 200 OK"); n != 3 {
		t.Errorf("tour shows %d healed calls, want 3:\n%s", n, out)
	}
	if strings.Contains(out, "(none)") {
		t.Errorf("a failed attempt has no tracking ID:\n%s", out)
	}
	if errOut != "" {
		t.Errorf("stderr = %q, want nothing without -v", errOut)
	}
}

func TestTourVerboseLogs(t *testing.T) {
	code, _, errOut := runForTest(t, nil, "-v", "-backoff", "1ms", "-backoff-max", "2ms")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{`msg="retrying request"`, `msg="request failed"`, "tracking_id="} {
		if !strings.Contains(errOut, want) {
			t.Errorf("verbose log lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "Bearer") {
		t.Errorf("verbose log contains a token:\n%s", errOut)
	}
}

func TestCallPrintsBody(t *testing.T) {
	srv := xdrtest.NewServer()
	defer srv.Close()
	token := srv.IssueToken(time.Hour)
	srv.Script("GET /api/machines", xdrtest.ErrorCode(503, "ServiceUnavailable", "try later"))

	code, out, errOut := runForTest(t, map[string]string{"XDR_TOKEN": token}, "-backoff", "1ms", srv.URL+"/api/machines")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	if !strings.Contains(out, `"value"`) || !strings.Contains(out, srv.Machines()[0].ID) {
		t.Errorf("stdout lacks the machine list:\n%s", out)
	}
}

func TestCallPostsBodyFromFile(t *testing.T) {
	srv := xdrtest.NewServer()
	defer srv.Close()
	token := srv.IssueToken(time.Hour)
	file := filepath.Join(t.TempDir(), "query.json")
	if err := os.WriteFile(file, []byte(`{"Query":"DeviceInfo | take 1"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runForTest(t, map[string]string{"XDR_TOKEN": token}, "-d", "@"+file, srv.URL+"/api/advancedqueries/run")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	if !strings.Contains(out, `"Results"`) {
		t.Errorf("stdout lacks query results:\n%s", out)
	}
	recs := srv.Requests()
	if len(recs) != 1 || recs[0].Method != "POST" {
		t.Errorf("requests = %+v, want one POST", recs)
	}
}

func TestCallErrorShowsTrackingID(t *testing.T) {
	srv := xdrtest.NewServer()
	defer srv.Close()
	token := srv.IssueToken(time.Hour)

	code, out, errOut := runForTest(t, map[string]string{"XDR_TOKEN": token}, srv.URL+"/api/machines/unknown")
	if code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	recs := srv.Requests()
	if len(recs) != 1 || recs[0].TrackingID == "" {
		t.Fatalf("requests = %+v, want one with a tracking ID", recs)
	}
	if !strings.Contains(errOut, "tracking ID: "+recs[0].TrackingID) {
		t.Errorf("stderr lacks the tracking ID %s:\n%s", recs[0].TrackingID, errOut)
	}
	if !strings.Contains(errOut, "404 NotFound") {
		t.Errorf("stderr lacks the code:\n%s", errOut)
	}
	if n := strings.Count(errOut, srv.URL); n != 1 {
		t.Errorf("stderr names the URL %d times, want once:\n%s", n, errOut)
	}
	if out != "" {
		t.Errorf("stdout = %q, want nothing", out)
	}
}

func TestCallExpiredTokenFails(t *testing.T) {
	srv := xdrtest.NewServer()
	defer srv.Close()
	token := srv.IssueToken(time.Hour)
	srv.ExpireToken(token)

	code, _, errOut := runForTest(t, map[string]string{"XDR_TOKEN": token}, srv.URL+"/api/alerts")
	if code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	if !strings.Contains(errOut, "401 Unauthorized") || !strings.Contains(errOut, "tracking ID: ") {
		t.Errorf("stderr = %q", errOut)
	}
	if !strings.Contains(errOut, "rejected XDR_TOKEN") {
		t.Errorf("stderr = %q, want a hint to renew XDR_TOKEN", errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"missing credentials", nil, []string{"http://127.0.0.1:1/api/alerts"}, "no credentials: set XDR_TOKEN"},
		{"partial credentials", map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c"}, []string{"http://127.0.0.1:1/api/alerts"}, "AZURE_CLIENT_SECRET"},
		{"two URLs", nil, []string{"http://127.0.0.1:1/a", "http://127.0.0.1:1/b"}, "at most one URL"},
		{"bad header", map[string]string{"XDR_TOKEN": "t"}, []string{"-H", "NoColon", "http://127.0.0.1:1/a"}, `invalid header "NoColon"`},
		{"missing body file", map[string]string{"XDR_TOKEN": "t"}, []string{"-d", "@/nonexistent/q.json", "http://127.0.0.1:1/a"}, "reading body"},
		{"unknown flag", nil, []string{"-nope"}, "flag provided but not defined"},
		{"bad URL", map[string]string{"XDR_TOKEN": "t"}, []string{"http://[::1"}, "invalid request"},
		{"not a URL", map[string]string{"XDR_TOKEN": "t"}, []string{"not a url"}, `invalid URL "not a url"`},
		{"no host", map[string]string{"XDR_TOKEN": "t"}, []string{"https:///api/alerts"}, "invalid URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runForTest(t, tc.env, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr = %q, want it to contain %q", errOut, tc.want)
			}
			if n := strings.Count(errOut, tc.want); n != 1 {
				t.Errorf("stderr reports %q %d times, want once", tc.want, n)
			}
		})
	}
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	code, _, errOut := runForTest(t, nil, "-h")
	if code != exitOK {
		t.Errorf("exit %d, want 0", code)
	}
	for _, flag := range []string{"-X", "-d", "-H", "-retries", "-max-wait", "-backoff", "-backoff-max", "-timeout", "-v", "-scope", "-authority", "XDR_TOKEN", "AZURE_CLIENT_SECRET"} {
		if !strings.Contains(errOut, flag) {
			t.Errorf("help lacks %s:\n%s", flag, errOut)
		}
	}
}

// tokenEndpoint is a loopback client credentials endpoint that issues
// tokens of api and records the forms it received.
type tokenEndpoint struct {
	*httptest.Server
	mu    sync.Mutex
	forms []url.Values
	paths []string
}

func newTokenEndpoint(t *testing.T, api *xdrtest.Server) *tokenEndpoint {
	t.Helper()
	e := &tokenEndpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		e.mu.Lock()
		e.forms = append(e.forms, r.PostForm)
		e.paths = append(e.paths, r.URL.Path)
		e.mu.Unlock()
		if r.PostForm.Get("client_secret") != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client","error_description":"bad secret"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": api.IssueToken(time.Hour), "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(e.Close)
	return e
}

func TestCallWithClientCredentials(t *testing.T) {
	api := xdrtest.NewServer()
	defer api.Close()
	endpoint := newTokenEndpoint(t, api)
	env := map[string]string{
		"AZURE_TENANT_ID":      "contoso",
		"AZURE_CLIENT_ID":      "app-id",
		"AZURE_CLIENT_SECRET":  "s3cret",
		"AZURE_AUTHORITY_HOST": endpoint.URL,
	}
	// The first token is revoked as soon as it is used: xdrcall must
	// refresh it through the transport.
	api.Script("GET /api/alerts", xdrtest.ErrorCode(401, "Unauthorized", "token revoked"))

	code, out, errOut := runForTest(t, env, "-scope", "https://api.security.microsoft.com/.default", api.URL+"/api/alerts")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	if !strings.Contains(out, `"value"`) {
		t.Errorf("stdout lacks the alerts:\n%s", out)
	}
	endpoint.mu.Lock()
	defer endpoint.mu.Unlock()
	if len(endpoint.forms) != 2 {
		t.Fatalf("token endpoint called %d times, want 2 (token, refresh)", len(endpoint.forms))
	}
	form := endpoint.forms[0]
	if form.Get("grant_type") != "client_credentials" || form.Get("client_id") != "app-id" || form.Get("scope") != "https://api.security.microsoft.com/.default" {
		t.Errorf("token request form = %v", form)
	}
	if endpoint.paths[0] != "/contoso/oauth2/v2.0/token" {
		t.Errorf("token request path = %q", endpoint.paths[0])
	}
}

func TestCallWithBadSecret(t *testing.T) {
	api := xdrtest.NewServer()
	defer api.Close()
	endpoint := newTokenEndpoint(t, api)
	env := map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "wrong"}
	code, _, errOut := runForTest(t, env, "-authority", endpoint.URL, api.URL+"/api/alerts")
	if code != exitFailed || !strings.Contains(errOut, "getting a token") || !strings.Contains(errOut, "invalid_client") {
		t.Errorf("exit %d, stderr %q; want a token error", code, errOut)
	}
	if strings.Contains(errOut, "wrong") {
		t.Errorf("stderr shows the client secret: %q", errOut)
	}
	if n := len(api.Requests()); n != 0 {
		t.Errorf("the API saw %d requests without a token", n)
	}
}

func TestDefaultScope(t *testing.T) {
	tests := map[string]string{
		"https://api.security.microsoft.com/api/alerts":       "https://api.securitycenter.microsoft.com/.default",
		"https://eu.api.security.microsoft.com/api/machines":  "https://api.securitycenter.microsoft.com/.default",
		"https://api.securitycenter.microsoft.com/api/alerts": "https://api.securitycenter.microsoft.com/.default",
		"https://graph.microsoft.com/v1.0/security/alerts_v2": "https://graph.microsoft.com/.default",
		"https://graph.microsoft.us/v1.0/security/incidents":  "https://graph.microsoft.us/.default",
		"http://127.0.0.1:8080/api/alerts":                    "https://127.0.0.1:8080/.default",
	}
	for raw, want := range tests {
		u, _ := url.Parse(raw)
		if got := defaultScope(u); got != want {
			t.Errorf("defaultScope(%s) = %q, want %q", raw, got, want)
		}
	}
}

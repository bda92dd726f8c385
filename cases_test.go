package xdrretry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// realCase is a response shape that callers of the Defender and Graph APIs
// have met, and what the transport must do with it. Identifiers are
// placeholders.
type realCase struct {
	name     string
	method   string
	path     string
	steps    []step // the responses, in order; then fallback
	fallback step   // nil means 200 "ok"
	refresh  RefreshFunc

	// Expected outcome: wantCode empty means success.
	wantCode     string
	wantTracking string
	wantAttempts int
	wantIs       error
	checkWaits   func(t *testing.T, waits []time.Duration)
}

const (
	mdeTracking   = "00000000-0000-0000-0000-000000000001"
	graphTracking = "00000000-0000-0000-0000-00000000000a"
)

func mde(code, message string) string {
	return `{"error":{"code":"` + code + `","message":"` + message + `","target":"` + mdeTracking + `"}}`
}

func graph(code, message string) string {
	return `{"error":{"code":"` + code + `","message":"` + message + `","innerError":{"date":"2024-05-01T10:00:00","request-id":"` + graphTracking + `","client-request-id":"00000000-0000-0000-0000-00000000000b"}}}`
}

func waitsAtLeast(min ...time.Duration) func(*testing.T, []time.Duration) {
	return func(t *testing.T, waits []time.Duration) {
		t.Helper()
		if len(waits) < len(min) {
			t.Fatalf("waits = %v, want at least %d", waits, len(min))
		}
		for i, m := range min {
			if waits[i] < m {
				t.Errorf("wait %d = %v, want at least %v", i+1, waits[i], m)
			}
		}
	}
}

func waitsExactly(want ...time.Duration) func(*testing.T, []time.Duration) {
	return func(t *testing.T, waits []time.Duration) {
		t.Helper()
		if len(waits) != len(want) {
			t.Fatalf("waits = %v, want %v", waits, want)
		}
		for i := range want {
			if waits[i] != want[i] {
				t.Errorf("wait %d = %v, want %v", i+1, waits[i], want[i])
			}
		}
	}
}

func noWaits(t *testing.T, waits []time.Duration) {
	t.Helper()
	if len(waits) != 0 {
		t.Errorf("waits = %v, want none", waits)
	}
}

func refreshTo(token string) RefreshFunc {
	return func(context.Context, *Error) (string, error) { return token, nil }
}

func realCases() []realCase {
	quota45 := mde("429", "API calls quota exceeded! maximum allowed 45 per 00:01:00")
	quota1500 := mde("429", "API calls quota exceeded! maximum allowed 1500 per 01:00:00")
	return []realCase{
		// Throttling.
		{name: "hunting 429 with digits code is retried", method: "POST", path: "/api/advancedqueries/run",
			steps: []step{reply(429, quota45)}, wantAttempts: 2,
			checkWaits: func(t *testing.T, w []time.Duration) {
				if len(w) != 1 || w[0] > time.Minute {
					t.Errorf("waits = %v, want one wait within the one-minute window", w)
				}
			}},
		{name: "hourly quota fails at once", method: "POST", path: "/api/advancedqueries/run",
			steps: []step{reply(429, quota1500)}, wantCode: "TooManyRequests", wantTracking: mdeTracking,
			wantAttempts: 1, wantIs: ErrWaitTooLong, checkWaits: noWaits},
		{name: "paging 429 retries the same page", method: "GET", path: "/api/vulnerabilities/machinesVulnerabilities?$skip=8000",
			steps: []step{reply(429, mde("TooManyRequests", "Too many requests"))}, wantAttempts: 2},
		{name: "polling 429 never looks like an empty success", method: "GET", path: "/api/machineactions?$filter=status+eq+%27Pending%27",
			fallback: reply(429, mde("TooManyRequests", "Too many requests")), wantCode: "TooManyRequests",
			wantTracking: mdeTracking, wantAttempts: 5, wantIs: ErrRetriesExhausted},
		{name: "live response 429 waits grow", method: "POST", path: "/api/machines/m1/runliveresponse",
			fallback: reply(429, mde("TooManyRequests", "over 10 calls a minute")), wantCode: "TooManyRequests",
			wantAttempts: 5, wantIs: ErrTooManyRequests,
			checkWaits: func(t *testing.T, w []time.Duration) {
				// Means 1, 2, 4, 8 s with ±50% jitter: the last is at least 4 s.
				if len(w) != 4 || w[3] < 4*time.Second || w[0] > 1500*time.Millisecond {
					t.Errorf("waits = %v, want four growing backoff waits", w)
				}
			}},
		{name: "batch 429 fractional Retry-After", method: "POST", path: "/v1.0/$batch",
			steps:        []step{reply(429, graph("TooManyRequests", "Please retry again later."), "Retry-After: 0.249")},
			wantAttempts: 2, checkWaits: waitsAtLeast(249 * time.Millisecond)},
		{name: "graph 429 without Retry-After backs off", method: "GET", path: "/v1.0/security/alerts_v2",
			steps:        []step{reply(429, graph("TooManyRequests", "")), reply(429, graph("TooManyRequests", ""))},
			wantAttempts: 3, checkWaits: waitsAtLeast(500*time.Millisecond, time.Second)},
		{name: "graph 503 HTTP-date Retry-After", method: "GET", path: "/v1.0/security/incidents",
			steps:        []step{reply(503, graph("ServiceUnavailable", ""), "Retry-After: Wed, 01 May 2024 10:01:30 GMT")},
			wantAttempts: 2, checkWaits: waitsExactly(90 * time.Second)},
		{name: "graph documented throttling body", method: "GET", path: "/v1.0/security/alerts_v2",
			steps:        []step{reply(429, `{"error":{"code":"TooManyRequests","message":"Please retry again later.","innerError":{"code":"429","date":"2024-05-01T10:00:00","message":"Please retry after","request-id":"`+graphTracking+`","status":"429"}}}`, "Retry-After: 10")},
			wantAttempts: 2, checkWaits: waitsExactly(10 * time.Second)},

		// Advanced hunting.
		{name: "hunting result too large fails fast", method: "POST", path: "/api/advancedqueries/run",
			steps:    []step{reply(400, mde("BadRequest", "Query execution has exceeded the allowed result size. Optimize your query by limiting the amount of results and try again."))},
			wantCode: "BadRequest", wantTracking: mdeTracking, wantAttempts: 1, checkWaits: noWaits},
		{name: "graph hunting preempted fails fast", method: "POST", path: "/v1.0/security/runHuntingQuery",
			steps:    []step{reply(400, graph("BadRequest", "Query execution was preempted because it used too much CPU"))},
			wantCode: "BadRequest", wantTracking: graphTracking, wantAttempts: 1},
		{name: "graph hunting 500 UnknownError exhausts", method: "POST", path: "/beta/security/runHuntingQuery",
			fallback: reply(500, graph("UnknownError", "")), wantCode: "UnknownError", wantTracking: graphTracking,
			wantAttempts: 5, wantIs: ErrRetriesExhausted},
		{name: "graph hunting 504 UnknownError backs off", method: "POST", path: "/beta/security/runHuntingQuery",
			fallback: reply(504, graph("UnknownError", "")), wantCode: "UnknownError", wantAttempts: 5,
			checkWaits: waitsAtLeast(500*time.Millisecond, time.Second, 2*time.Second, 4*time.Second)},

		// Machine actions.
		{name: "isolate after a 5xx meets ActiveRequestAlreadyExists", method: "POST", path: "/api/machines/m1/isolate",
			steps:    []step{reply(503, ""), reply(400, mde("ActiveRequestAlreadyExists", "Action is already in progress"))},
			wantCode: "ActiveRequestAlreadyExists", wantTracking: mdeTracking, wantAttempts: 2},
		{name: "offboard without Comment", method: "POST", path: "/api/machines/m1/offboard",
			steps:    []step{reply(400, mde("MissingRequiredParameter", "Comment is required"))},
			wantCode: "MissingRequiredParameter", wantAttempts: 1, wantIs: ErrMissingRequiredParameter},
		{name: "wrong-case body field", method: "POST", path: "/api/machines/m1/offboard",
			steps:    []step{reply(400, mde("InvalidRequestBody", "Request body is incorrect"))},
			wantCode: "InvalidRequestBody", wantAttempts: 1, wantIs: ErrInvalidRequestBody},
		{name: "investigation package already running", method: "POST", path: "/api/machines/m1/collectInvestigationPackage",
			steps:    []step{reply(400, mde("BadRequest", "Collect investigation package is already running"))},
			wantCode: "BadRequest", wantAttempts: 1},

		// Not found, OData.
		{name: "invalid filter", method: "GET", path: "/api/recommendations?$filter=bogus",
			steps:    []step{reply(400, mde("ODataError", "Filter parameter is invalid"))},
			wantCode: "ODataError", wantAttempts: 1, wantIs: ErrODataError},
		{name: "path typo with HTML 404", method: "GET", path: "/api/machine",
			steps:    []step{reply(404, "<html><body>The resource cannot be found.</body></html>", "Content-Type: text/html")},
			wantCode: "NotFound", wantAttempts: 1, wantIs: ErrNotFound},
		{name: "path typo with empty 404", method: "GET", path: "/api/machine",
			steps: []step{reply(404, "")}, wantCode: "NotFound", wantAttempts: 1},
		{name: "metadata 500 without message", method: "GET", path: "/api/$metadata?$format=json",
			fallback: reply(500, ""), wantCode: "InternalServerError", wantAttempts: 5, wantIs: ErrInternalServerError},

		// 401 and 403.
		{name: "missing roles 403 is not refreshed", method: "GET", path: "/api/machines",
			steps:    []step{reply(403, mde("Forbidden", "Missing application roles. API required roles: Machine.Read.All,Machine.ReadWrite.All, application roles: Machine.Isolate."))},
			refresh:  refreshTo("new"),
			wantCode: "Forbidden", wantTracking: mdeTracking, wantAttempts: 1},
		{name: "empty role list 403", method: "GET", path: "/api/machines",
			steps:    []step{reply(403, mde("Forbidden", "Missing application roles. API required roles: Machine.Read.All,Machine.ReadWrite.All, application roles: ."))},
			refresh:  refreshTo("new"),
			wantCode: "Forbidden", wantAttempts: 1},
		{name: "inactive account 401 twice stops", method: "GET", path: "/api/alerts",
			fallback: reply(401, mde("Unauthorized", "Unauthorized request - reason of failure: Account mode is inactive")),
			refresh:  refreshTo("new"),
			wantCode: "Unauthorized", wantTracking: mdeTracking, wantAttempts: 2, wantIs: ErrRefreshFailed},
		{name: "graph invalid signature refreshes once", method: "GET", path: "/v1.0/security/alerts_v2",
			fallback: reply(401, graph("InvalidAuthenticationToken", "Signature is invalid.")),
			refresh:  refreshTo("new"),
			wantCode: "InvalidAuthenticationToken", wantTracking: graphTracking, wantAttempts: 2},
		{name: "graph 401 older innerError shape", method: "GET", path: "/v1.0/security/alerts_v2",
			steps:    []step{reply(401, `{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired.","innerError":{"request-id":"`+graphTracking+`","date":"2019-01-01T00:00:00"}}}`)},
			wantCode: "InvalidAuthenticationToken", wantTracking: graphTracking, wantAttempts: 1, wantIs: errNoRefresh},

		// Bodies that break naive parsers.
		{name: "byte order mark before JSON", method: "GET", path: "/v1.0/security/incidents",
			fallback: reply(500, "\xef\xbb\xbf"+graph("InternalServerError", "An internal error"), "Content-Type: application/json"),
			wantCode: "InternalServerError", wantTracking: graphTracking, wantAttempts: 5},
		{name: "front door HTML 503 is retried", method: "POST", path: "/v1.0/$batch",
			steps: []step{reply(503, "<html><h2>Our services aren't available right now</h2></html>", "Content-Type: text/html")}, wantAttempts: 2},
		{name: "dropped connection is retried", method: "GET", path: "/api/alerts",
			steps: []step{hangUp()}, wantAttempts: 2},
	}
}

func TestRealCases(t *testing.T) {
	now := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range realCases() {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScriptServer(t, tc.steps...)
			srv.fallback = tc.fallback
			var opts []Option
			if tc.refresh != nil {
				opts = append(opts, WithTokenRefresh(tc.refresh))
			}
			tr, sleeps := newFakeClockTransport(now, opts...)

			var body io.Reader
			if tc.method == http.MethodPost {
				body = strings.NewReader(`{"Comment":"case"}`)
			}
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer old")

			resp, err := tr.RoundTrip(req)
			seen := srv.requests()
			if len(seen) != tc.wantAttempts {
				t.Errorf("server saw %d requests, want %d", len(seen), tc.wantAttempts)
			}
			for i, r := range seen {
				if r.method != tc.method || !strings.HasPrefix(tc.path, r.path) {
					t.Errorf("attempt %d went to %s %s", i+1, r.method, r.path)
				}
			}
			if tc.checkWaits != nil {
				tc.checkWaits(t, sleeps.all())
			}

			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
				resp.Body.Close()
				return
			}
			if resp != nil {
				t.Errorf("response %s returned with the error", resp.Status)
			}
			xerr := mustAsError(t, err)
			if xerr.Code != tc.wantCode {
				t.Errorf("Code = %q, want %q", xerr.Code, tc.wantCode)
			}
			if tc.wantTracking != "" && xerr.TrackingID != tc.wantTracking {
				t.Errorf("TrackingID = %q, want %q", xerr.TrackingID, tc.wantTracking)
			}
			if xerr.Attempts != tc.wantAttempts {
				t.Errorf("Attempts = %d, want %d", xerr.Attempts, tc.wantAttempts)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("errors.Is(err, %v) = false for %v", tc.wantIs, err)
			}
		})
	}
}

func TestCAEChallengeGetsNewToken(t *testing.T) {
	// A continuous access evaluation 401: the refresh function receives the
	// decoded claims, and the retry carries the new token, never the old.
	srv := newScriptServer(t, reply(401, graph("InvalidAuthenticationToken", "Continuous access evaluation resulted in challenge"),
		"WWW-Authenticate: "+caeHeader))
	var claims string
	tr, _ := newFakeClockTransport(time.Now(), WithTokenRefresh(func(_ context.Context, rejected *Error) (string, error) {
		claims = rejected.Challenge.Claims
		return "token-with-claims", nil
	}))
	req := mustRequest(t, http.MethodGet, srv.URL+"/v1.0/security/alerts_v2")
	req.Header.Set("Authorization", "Bearer old")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(claims, `"nbf"`) {
		t.Errorf("claims = %q, want the decoded claims request", claims)
	}
	seen := srv.requests()
	if len(seen) != 2 || seen[1].auth != "Bearer token-with-claims" {
		t.Errorf("requests = %+v, want a retry with the new token", seen)
	}
}

package xdrretry

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	trackingA = "11111111-1111-1111-1111-111111111111"
	trackingB = "22222222-2222-2222-2222-222222222222"
)

func envelope500(tracking string) string {
	return fmt.Sprintf(`{"error":{"code":"InternalServerError","message":"An unexpected error occurred","target":%q}}`, tracking)
}

// fastTransport retries with millisecond waits over a real transport.
func fastTransport(opts ...Option) *Transport {
	base := &http.Transport{}
	opts = append([]Option{WithBackoff(time.Millisecond, 4*time.Millisecond)}, opts...)
	return New(base, opts...)
}

func mustAsError(t *testing.T, err error) *Error {
	t.Helper()
	var xerr *Error
	if !errors.As(err, &xerr) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return xerr
}

func TestSuccessPassesThrough(t *testing.T) {
	body := strings.Repeat("alert ", 10000)
	srv := newScriptServer(t, reply(http.StatusOK, body, "X-Custom: kept"))
	client := &http.Client{Transport: fastTransport()}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/alerts?$top=10", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if string(got) != body {
		t.Errorf("body of %d bytes differs from the %d sent", len(got), len(body))
	}
	if resp.Header.Get("X-Custom") != "kept" {
		t.Errorf("header X-Custom = %q", resp.Header.Get("X-Custom"))
	}
	if resp.Request != req {
		t.Errorf("resp.Request is not the caller's request")
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestRetriesThenSucceeds(t *testing.T) {
	srv := newScriptServer(t,
		reply(500, envelope500(trackingA)),
		reply(503, "", "Retry-After: 0"),
		reply(200, `{"value":[]}`),
	)
	var events []RetryEvent
	client := &http.Client{Transport: fastTransport(WithRetryHook(func(ev RetryEvent) { events = append(events, ev) }))}

	resp, err := client.Get(srv.URL + "/api/machines")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	if len(events) != 2 {
		t.Fatalf("retry hook called %d times, want 2", len(events))
	}
	if events[0].Attempt != 1 || events[0].StatusCode != 500 || events[0].Code != "InternalServerError" || events[0].TrackingID != trackingA {
		t.Errorf("first event = %+v", events[0])
	}
	if events[1].Attempt != 2 || events[1].StatusCode != 503 || events[1].Code != "ServiceUnavailable" {
		t.Errorf("second event = %+v", events[1])
	}
}

func TestBodyReplayedExactly(t *testing.T) {
	payload := `{"Query":"DeviceProcessEvents | take 10"}`
	bodies := map[string]func() *http.Request{
		"GetBody": func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, "", strings.NewReader(payload))
			return req
		},
		"buffered": func() *http.Request {
			// io.MultiReader hides the type, so http.NewRequest sets no
			// GetBody and the transport must buffer.
			req, _ := http.NewRequest(http.MethodPost, "", io.MultiReader(strings.NewReader(payload)))
			req.ContentLength = int64(len(payload))
			return req
		},
		"chunked": func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, "", io.MultiReader(strings.NewReader(payload)))
			return req
		},
	}
	for name, newReq := range bodies {
		t.Run(name, func(t *testing.T) {
			srv := newScriptServer(t, reply(500, envelope500(trackingA)), reply(502, "<html>bad gateway</html>"))
			req := newReq()
			req.URL, _ = req.URL.Parse(srv.URL + "/api/advancedqueries/run")
			req.Host = ""
			counter := &closeCounter{Reader: req.Body}
			req.Body = counter
			wantLength := req.ContentLength
			if wantLength == 0 {
				wantLength = -1 // unknown length: sent chunked
			}

			resp, err := fastTransport().RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			seen := srv.requests()
			if len(seen) != 3 {
				t.Fatalf("server saw %d requests, want 3", len(seen))
			}
			for i, r := range seen {
				if r.body != payload {
					t.Errorf("attempt %d body = %q, want %q", i+1, r.body, payload)
				}
				if r.contentLength != wantLength {
					t.Errorf("attempt %d Content-Length = %d, want %d", i+1, r.contentLength, wantLength)
				}
			}
			if n := counter.closes.Load(); n < 1 {
				t.Errorf("caller's body closed %d times, want at least 1", n)
			}
		})
	}
}

func TestCallerRequestUnchanged(t *testing.T) {
	srv := newScriptServer(t, reply(500, envelope500(trackingA)), reply(401, `{"error":{"code":"Unauthorized","message":"expired"}}`))
	tr := fastTransport(WithTokenRefresh(func(context.Context, *Error) (string, error) { return "new-token", nil }))

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/machines/abc/isolate", strings.NewReader(`{"Comment":"c"}`))
	req.Header.Set("Authorization", "Bearer old-token")
	before := *req
	headerBefore := req.Header.Clone()

	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := req.Header.Get("Authorization"); got != "Bearer old-token" {
		t.Errorf("caller's Authorization = %q, want unchanged", got)
	}
	if fmt.Sprint(req.Header) != fmt.Sprint(headerBefore) {
		t.Errorf("caller's header changed: %v, was %v", req.Header, headerBefore)
	}
	if req.Body != before.Body || req.ContentLength != before.ContentLength || req.Host != before.Host || req.URL != before.URL {
		t.Errorf("caller's request fields changed")
	}
	if req.Context() != context.Background() {
		t.Errorf("caller's context changed")
	}
	seen := srv.requests()
	if got := seen[len(seen)-1].auth; got != "Bearer new-token" {
		t.Errorf("last attempt sent Authorization %q, want the new token", got)
	}
}

func TestRetriesExhausted(t *testing.T) {
	srv := newScriptServer(t)
	srv.fallback = reply(500, `{"error":{"code":"UnknownError","message":"","innerError":{"request-id":"`+trackingB+`"}}}`)
	client := &http.Client{Transport: fastTransport(WithMaxRetries(3))}

	_, err := client.Post(srv.URL+"/beta/security/runHuntingQuery", "application/json", strings.NewReader(`{}`))
	xerr := mustAsError(t, err)
	if xerr.Attempts != 4 {
		t.Errorf("Attempts = %d, want 4", xerr.Attempts)
	}
	if len(srv.requests()) != 4 {
		t.Errorf("server saw %d requests, want 4", len(srv.requests()))
	}
	if len(xerr.History) != 3 {
		t.Errorf("History has %d entries, want 3", len(xerr.History))
	}
	if xerr.Code != "UnknownError" || xerr.TrackingID != trackingB || xerr.StatusCode != 500 {
		t.Errorf("error = %+v", xerr)
	}
	if !errors.Is(err, ErrRetriesExhausted) || !errors.Is(err, ErrUnknownError) {
		t.Errorf("errors.Is fails for ErrRetriesExhausted or ErrUnknownError: %v", err)
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrWaitTooLong) {
		t.Errorf("errors.Is matches a wrong sentinel: %v", err)
	}
	if !xerr.Transient() {
		t.Errorf("Transient() = false for a 500")
	}
	for _, want := range []string{"POST", "/beta/security/runHuntingQuery", "500 UnknownError", trackingB, "4 attempts", "retries exhausted"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err.Error(), want)
		}
	}
}

func TestNoRetriesWhenDisabled(t *testing.T) {
	srv := newScriptServer(t, reply(503, ""))
	_, err := fastTransport(WithMaxRetries(0)).RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	xerr := mustAsError(t, err)
	if xerr.Attempts != 1 || len(srv.requests()) != 1 {
		t.Errorf("Attempts = %d, server saw %d; want 1 and 1", xerr.Attempts, len(srv.requests()))
	}
	if errors.Is(err, ErrRetriesExhausted) {
		t.Errorf("a request with retries disabled reports exhausted retries")
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestFailFast(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		code     string
		sentinel error
	}{
		{"not found", 404, `{"error":{"code":"NotFound","message":"Machine was not found","target":"` + trackingA + `"}}`, "NotFound", ErrNotFound},
		{"forbidden is not refreshed", 403, `{"error":{"code":"Forbidden","message":"Missing application roles. API required roles: Machine.Read.All, application roles: .","target":"` + trackingA + `"}}`, "Forbidden", ErrForbidden},
		{"active request", 400, `{"error":{"code":"ActiveRequestAlreadyExists","message":"Action is already in progress","target":"` + trackingA + `"}}`, "ActiveRequestAlreadyExists", ErrActiveRequestAlreadyExists},
		{"missing parameter", 400, `{"error":{"code":"MissingRequiredParameter","message":"Comment is required","target":"` + trackingA + `"}}`, "MissingRequiredParameter", ErrMissingRequiredParameter},
		{"result too large", 400, `{"error":{"code":"BadRequest","message":"Query execution has exceeded the allowed result size.","target":"` + trackingA + `"}}`, "BadRequest", ErrBadRequest},
		{"OData filter", 400, `{"error":{"code":"ODataError","message":"Filter parameter is invalid","target":"` + trackingA + `"}}`, "ODataError", ErrODataError},
		{"HTML 404", 404, `<html><body>404</body></html>`, "NotFound", ErrNotFound},
		{"empty 404", 404, ``, "NotFound", ErrNotFound},
		{"conflict", 409, ``, "Conflict", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScriptServer(t, reply(tc.status, tc.body, "Content-Type: application/json"))
			refreshed := false
			client := &http.Client{Transport: fastTransport(WithTokenRefresh(func(context.Context, *Error) (string, error) {
				refreshed = true
				return "x", nil
			}))}
			resp, err := client.Get(srv.URL + "/api/machines/x")
			if resp != nil {
				t.Errorf("response %v returned with the error", resp.Status)
			}
			xerr := mustAsError(t, err)
			if xerr.StatusCode != tc.status || xerr.Code != tc.code || xerr.Attempts != 1 {
				t.Errorf("error = status %d code %q attempts %d", xerr.StatusCode, xerr.Code, xerr.Attempts)
			}
			if n := len(srv.requests()); n != 1 {
				t.Errorf("server saw %d requests, want 1", n)
			}
			if refreshed {
				t.Errorf("token refresh called for %d", tc.status)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("errors.Is(err, %v) = false", tc.sentinel)
			}
			if xerr.Transient() {
				t.Errorf("Transient() = true for %d", tc.status)
			}
			if strings.Contains(tc.body, trackingA) && !strings.Contains(err.Error(), "tracking ID "+trackingA) {
				t.Errorf("message %q lacks the tracking ID", err.Error())
			}
		})
	}
}

func TestFailFastAfterRetryKeepsHistory(t *testing.T) {
	// A POST that times out at the gateway and then meets
	// ActiveRequestAlreadyExists probably went through the first time; the
	// error's History shows the earlier 504.
	srv := newScriptServer(t,
		reply(504, "", "Request-Id: "+trackingA),
		reply(400, `{"error":{"code":"ActiveRequestAlreadyExists","message":"exists","target":"`+trackingB+`"}}`),
	)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/machines/m1/isolate", strings.NewReader(`{"Comment":"x","IsolationType":"Full"}`))
	_, err := fastTransport().RoundTrip(req)
	xerr := mustAsError(t, err)
	if xerr.Code != "ActiveRequestAlreadyExists" || xerr.TrackingID != trackingB {
		t.Errorf("error = %q %q", xerr.Code, xerr.TrackingID)
	}
	if len(xerr.History) != 1 || xerr.History[0].StatusCode != 504 || xerr.History[0].TrackingID != trackingA {
		t.Errorf("History = %+v, want the 504 with its tracking ID", xerr.History)
	}
	if xerr.Attempts != 2 {
		t.Errorf("Attempts = %d, want 2", xerr.Attempts)
	}
}

func TestRetryAfterWaits(t *testing.T) {
	now := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		steps   []step
		atLeast []time.Duration
		exactly []time.Duration
	}{
		{
			name:    "graph throttle seconds",
			steps:   []step{reply(429, `{"error":{"code":"TooManyRequests","message":"Please retry again later.","innerError":{"request-id":"r"}}}`, "Retry-After: 10")},
			exactly: []time.Duration{10 * time.Second},
		},
		{
			name:    "API Management message without header",
			steps:   []step{reply(429, `{"statusCode":429,"message":"Rate limit is exceeded. Try again in 12 seconds."}`)},
			exactly: []time.Duration{12 * time.Second},
		},
		{
			name:    "header before message",
			steps:   []step{reply(429, `{"statusCode":429,"message":"Rate limit is exceeded. Try again in 12 seconds."}`, "Retry-After: 7")},
			exactly: []time.Duration{7 * time.Second},
		},
		{
			name:    "fractional seconds",
			steps:   []step{reply(429, "", "Retry-After: 0.249")},
			atLeast: []time.Duration{249 * time.Millisecond},
		},
		{
			name:    "HTTP-date",
			steps:   []step{reply(503, "", "Retry-After: Wed, 01 May 2024 10:00:45 GMT")},
			exactly: []time.Duration{45 * time.Second},
		},
		{
			name:    "malformed falls back to backoff",
			steps:   []step{reply(429, "", "Retry-After: soon")},
			atLeast: []time.Duration{500 * time.Millisecond},
		},
		{
			name:    "merged values",
			steps:   []step{reply(429, "", "Retry-After: 3, 3")},
			exactly: []time.Duration{3 * time.Second},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScriptServer(t, tc.steps...)
			tr, sleeps := newFakeClockTransport(now)
			resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/v1.0/security/alerts_v2"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			waits := sleeps.all()
			if tc.exactly != nil && fmt.Sprint(waits) != fmt.Sprint(tc.exactly) {
				t.Errorf("waits = %v, want %v", waits, tc.exactly)
			}
			for i, min := range tc.atLeast {
				if i >= len(waits) || waits[i] < min {
					t.Errorf("waits = %v, want wait %d of at least %v", waits, i+1, min)
				}
			}
		})
	}
}

func TestRetryAfterIsMinimum(t *testing.T) {
	// "Retry-After: 1" on every attempt: the waits still grow with the
	// backoff once it passes one second.
	srv := newScriptServer(t)
	srv.fallback = reply(429, "", "Retry-After: 1")
	tr, sleeps := newFakeClockTransport(time.Now(), WithMaxRetries(5))
	_, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/v1.0/security/incidents"))
	if !errors.Is(err, ErrTooManyRequests) {
		t.Fatalf("err = %v, want TooManyRequests", err)
	}
	waits := sleeps.all()
	if len(waits) != 5 {
		t.Fatalf("waits = %v, want 5", waits)
	}
	for i, w := range waits {
		if w < time.Second {
			t.Errorf("wait %d = %v, below Retry-After", i+1, w)
		}
	}
	if waits[4] < 8*time.Second {
		t.Errorf("last wait = %v; the backoff (mean 16s ±50%%) should have passed Retry-After", waits[4])
	}
}

func TestWaitTooLong(t *testing.T) {
	tests := []struct {
		name      string
		step      step
		ctx       func() (context.Context, context.CancelFunc)
		wantAfter time.Duration
	}{
		{
			name:      "Retry-After above maximum",
			step:      reply(429, `{"error":{"code":"TooManyRequests","message":"slow down","target":"`+trackingA+`"}}`, "Retry-After: 600"),
			wantAfter: 10 * time.Minute,
		},
		{
			name:      "hourly quota in the message",
			step:      reply(429, `{"error":{"code":"429","message":"API calls quota exceeded! maximum allowed 1500 per 01:00:00","target":"`+trackingA+`"}}`),
			wantAfter: time.Hour,
		},
		{
			name: "wait past the deadline",
			step: reply(503, "", "Retry-After: 30"),
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 10*time.Second)
			},
			wantAfter: 30 * time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScriptServer(t, tc.step)
			tr, sleeps := newFakeClockTransport(time.Now())
			req := mustRequest(t, http.MethodPost, srv.URL+"/api/advancedqueries/run")
			if tc.ctx != nil {
				ctx, cancel := tc.ctx()
				defer cancel()
				req = req.WithContext(ctx)
			}
			_, err := tr.RoundTrip(req)
			xerr := mustAsError(t, err)
			if !errors.Is(err, ErrWaitTooLong) {
				t.Errorf("errors.Is(err, ErrWaitTooLong) = false: %v", err)
			}
			if xerr.RetryAfter != tc.wantAfter {
				t.Errorf("RetryAfter = %v, want %v", xerr.RetryAfter, tc.wantAfter)
			}
			if !strings.Contains(err.Error(), "retry after "+tc.wantAfter.String()) {
				t.Errorf("message %q does not say how long to wait", err.Error())
			}
			if len(sleeps.all()) != 0 || len(srv.requests()) != 1 {
				t.Errorf("slept %v and sent %d requests; want no sleep and 1 request", sleeps.all(), len(srv.requests()))
			}
			if !xerr.Transient() {
				t.Errorf("Transient() = false for a throttle")
			}
		})
	}
}

func TestMinuteQuotaIsRetried(t *testing.T) {
	srv := newScriptServer(t, reply(429, `{"error":{"code":"429","message":"API calls quota exceeded! maximum allowed 45 per 00:01:00","target":"t"}}`))
	tr, sleeps := newFakeClockTransport(time.Now())
	resp, err := tr.RoundTrip(mustRequest(t, http.MethodPost, srv.URL+"/api/advancedqueries/run"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if w := sleeps.all(); len(w) != 1 || w[0] > time.Minute {
		t.Errorf("waits = %v, want one backoff wait of at most the one-minute window", w)
	}
}

func TestCancelDuringWait(t *testing.T) {
	srv := newScriptServer(t, reply(503, `{"error":{"code":"ServiceUnavailable","message":"busy","target":"`+trackingA+`"}}`, "Retry-After: 60"))
	ctx, cancel := context.WithCancel(context.Background())
	tr := New(&http.Transport{}, WithRetryHook(func(RetryEvent) { cancel() }))
	req := mustRequest(t, http.MethodGet, srv.URL+"/api/alerts").WithContext(ctx)

	_, err := tr.RoundTrip(req)
	xerr := mustAsError(t, err)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(err, context.Canceled) = false: %v", err)
	}
	if xerr.TrackingID != trackingA || xerr.StatusCode != 503 {
		t.Errorf("error lost the last response: %+v", xerr)
	}
	if xerr.Transient() {
		t.Errorf("Transient() = true for a cancelled request")
	}
}

func TestCanceledBeforeSend(t *testing.T) {
	srv := newScriptServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := fastTransport().RoundTrip(mustRequest(t, http.MethodGet, srv.URL).WithContext(ctx))
	mustAsError(t, err)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("server saw %d requests", n)
	}
}

func TestNetworkFailures(t *testing.T) {
	t.Run("dropped connection is retried", func(t *testing.T) {
		srv := newScriptServer(t, hangUp(), hangUp())
		resp, err := fastTransport().RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/machines"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if n := len(srv.requests()); n != 3 {
			t.Errorf("server saw %d requests, want 3", n)
		}
	})
	t.Run("refused connection exhausts retries", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		var hooks int
		tr := fastTransport(WithMaxRetries(2), WithRetryHook(func(ev RetryEvent) {
			hooks++
			if ev.Err == nil || ev.StatusCode != 0 {
				t.Errorf("event = %+v, want a network error", ev)
			}
		}))
		_, err = tr.RoundTrip(mustRequest(t, http.MethodGet, "http://"+addr+"/api/machines"))
		xerr := mustAsError(t, err)
		var opErr *net.OpError
		if !errors.As(err, &opErr) {
			t.Errorf("error does not wrap *net.OpError: %v", err)
		}
		if xerr.Attempts != 3 || hooks != 2 {
			t.Errorf("Attempts = %d, hooks = %d; want 3 and 2", xerr.Attempts, hooks)
		}
		if !errors.Is(err, ErrRetriesExhausted) || !xerr.Transient() {
			t.Errorf("want exhausted and transient: %v", err)
		}
		if !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("message %q does not name the network error", err.Error())
		}
	})
}

func TestHTMLGatewayPage(t *testing.T) {
	page := "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
	srv := newScriptServer(t)
	srv.fallback = reply(502, page, "Content-Type: text/html")
	_, err := fastTransport(WithMaxRetries(1)).RoundTrip(mustRequest(t, http.MethodPost, srv.URL+"/v1.0/$batch"))
	xerr := mustAsError(t, err)
	if xerr.Code != "BadGateway" || xerr.Attempts != 2 {
		t.Errorf("code %q attempts %d, want BadGateway and 2", xerr.Code, xerr.Attempts)
	}
	if !strings.Contains(xerr.Snippet, "502 Bad Gateway") {
		t.Errorf("Snippet = %q", xerr.Snippet)
	}
	var syntaxErr interface{ Offset() int64 }
	if errors.As(err, &syntaxErr) || xerr.Err != nil {
		t.Errorf("a JSON error surfaced as the cause: %v", xerr.Err)
	}
}

func TestLargeErrorBodyBounded(t *testing.T) {
	const size = 20 << 20
	srv := newScriptServer(t)
	srv.fallback = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.WriteHeader(500)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for written := 0; written < size; written += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	tr := fastTransport(WithMaxRetries(2))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	runtime.ReadMemStats(&after)

	xerr := mustAsError(t, err)
	if xerr.Attempts != 3 || xerr.Code != "InternalServerError" {
		t.Errorf("attempts %d code %q", xerr.Attempts, xerr.Code)
	}
	// Three 20 MiB bodies pass; reading them whole would allocate 60 MiB.
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 8<<20 {
		t.Errorf("allocated %d MiB for three 20 MiB error bodies", grown>>20)
	}
}

func TestFailFastReusesConnection(t *testing.T) {
	// 200 sequential 404s with a body larger than retryablehttp's 4 KiB
	// drain: all travel over one connection, and the pool is never
	// emptied.
	body := `{"error":{"code":"NotFound","message":"` + strings.Repeat("m", 8<<10) + `","target":"t"}}`
	srv := newScriptServer(t)
	srv.fallback = reply(404, body)
	base := &idleCounter{Transport: &http.Transport{}}
	client := &http.Client{Transport: New(base)}

	for i := range 200 {
		_, err := client.Get(srv.URL + "/api/machines/missing")
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("request %d: err = %v", i, err)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("opened %d connections for 200 fail-fast 404s, want 1", n)
	}
	if n := base.closes.Load(); n != 0 {
		t.Errorf("CloseIdleConnections called %d times on the base", n)
	}
}

func TestRetriedErrorsReuseConnection(t *testing.T) {
	body := envelope500(trackingA) + strings.Repeat(" ", 100<<10)
	srv := newScriptServer(t)
	srv.fallback = reply(500, body)
	base := &idleCounter{Transport: &http.Transport{}}
	_, err := New(base, WithBackoff(time.Millisecond, time.Millisecond), WithMaxRetries(9)).
		RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	if !errors.Is(err, ErrRetriesExhausted) {
		t.Fatalf("err = %v", err)
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("opened %d connections for 10 attempts with 100 KiB bodies, want 1", n)
	}
	if n := base.closes.Load(); n != 0 {
		t.Errorf("CloseIdleConnections called %d times on the base", n)
	}
}

func TestCloseIdleConnectionsForwarded(t *testing.T) {
	base := &idleCounter{Transport: &http.Transport{}}
	New(base).CloseIdleConnections()
	if n := base.closes.Load(); n != 1 {
		t.Errorf("base CloseIdleConnections called %d times, want 1", n)
	}
	// A base without the method is fine.
	New(roundTripOnly{http.DefaultTransport}).CloseIdleConnections()
}

type roundTripOnly struct{ http.RoundTripper }

func TestRedirectClosesNextBody(t *testing.T) {
	// For a 307 the inner client opens the body of the next hop before
	// CheckRedirect stops it.
	srv := newScriptServer(t, reply(http.StatusTemporaryRedirect, "", "Location: /elsewhere"))
	var opened []*closeCounter
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/machines/m1/isolate", strings.NewReader("{}"))
	req.GetBody = func() (io.ReadCloser, error) {
		body := &closeCounter{Reader: strings.NewReader("{}")}
		opened = append(opened, body)
		return body, nil
	}
	resp, err := fastTransport().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("status = %d, want 307 returned to the caller", resp.StatusCode)
	}
	for i, body := range opened {
		if body.closes.Load() == 0 {
			t.Errorf("body %d of %d from GetBody was never closed", i+1, len(opened))
		}
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	srv := newScriptServer(t, reply(http.StatusFound, "", "Location: /elsewhere"))
	resp, err := fastTransport().RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("status = %d, want 302 returned to the caller", resp.StatusCode)
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestBodyErrors(t *testing.T) {
	t.Run("unreadable body without GetBody", func(t *testing.T) {
		srv := newScriptServer(t)
		counter := &closeCounter{Reader: io.MultiReader(strings.NewReader("part"), iotestErrReader{})}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/advancedqueries/run", counter)
		_, err := fastTransport().RoundTrip(req)
		mustAsError(t, err)
		if !errors.Is(err, errBroken) {
			t.Errorf("err = %v, want the read error wrapped", err)
		}
		if counter.closes.Load() != 1 {
			t.Errorf("body closed %d times, want 1", counter.closes.Load())
		}
		if n := len(srv.requests()); n != 0 {
			t.Errorf("server saw %d requests", n)
		}
	})
	t.Run("GetBody fails on retry", func(t *testing.T) {
		srv := newScriptServer(t, reply(500, envelope500(trackingA)))
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/advancedqueries/run", strings.NewReader("{}"))
		req.GetBody = func() (io.ReadCloser, error) { return nil, errBroken }
		_, err := fastTransport().RoundTrip(req)
		xerr := mustAsError(t, err)
		if !errors.Is(err, errBroken) {
			t.Errorf("err = %v, want the GetBody error wrapped", err)
		}
		if xerr.TrackingID != trackingA {
			t.Errorf("TrackingID = %q, want the 500's", xerr.TrackingID)
		}
	})
	t.Run("no replay without retries", func(t *testing.T) {
		// With retries and refresh off, a body without GetBody streams
		// through unbuffered.
		srv := newScriptServer(t)
		counter := &closeCounter{Reader: io.MultiReader(strings.NewReader("stream"))}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload", counter)
		resp, err := fastTransport(WithMaxRetries(0)).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := srv.requests()[0].body; got != "stream" {
			t.Errorf("body = %q", got)
		}
	})
}

var errBroken = errors.New("broken reader")

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errBroken }

func TestSilentByDefault(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	srv := newScriptServer(t, reply(500, envelope500(trackingA)), reply(404, ""))
	_, reqErr := fastTransport().RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	os.Stderr = stderr
	w.Close()
	printed, _ := io.ReadAll(r)

	if !errors.Is(reqErr, ErrNotFound) {
		t.Fatalf("err = %v", reqErr)
	}
	if len(printed) != 0 {
		t.Errorf("wrote to stderr: %q", printed)
	}
}

func TestLoggerNeverLogsTokens(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := newScriptServer(t,
		reply(500, envelope500(trackingA)),
		reply(401, `{"error":{"code":"Unauthorized","message":"expired"}}`),
		reply(401, `{"error":{"code":"Unauthorized","message":"expired","target":"`+trackingB+`"}}`),
	)
	tr := fastTransport(WithLogger(logger), WithTokenRefresh(func(context.Context, *Error) (string, error) {
		return "fresh-secret-token", nil
	}))
	req := mustRequest(t, http.MethodGet, srv.URL+"/api/alerts?$filter=severity+eq+%27High%27")
	req.Header.Set("Authorization", "Bearer old-secret-token")
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}

	out := buf.String()
	for _, secret := range []string{"secret-token", "Authorization", "Bearer"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("logged %d records, want 2 retries and 1 give-up:\n%s", len(lines), out)
	}
	for _, want := range []string{`"level":"DEBUG"`, `"msg":"retrying request"`, `"tracking_id":"` + trackingA + `"`, `"status":500`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("first record lacks %s: %s", want, lines[0])
		}
	}
	for _, want := range []string{`"level":"WARN"`, `"msg":"request failed"`, `"tracking_id":"` + trackingB + `"`, `"attempts":3`, `"code":"Unauthorized"`} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("last record lacks %s: %s", want, lines[2])
		}
	}
	if strings.Contains(out, "filter") {
		t.Errorf("log contains the query: %s", out)
	}
}

func TestConcurrentUse(t *testing.T) {
	// Every request fails once, with a 500 or a 429 by turns, then
	// succeeds: each takes exactly two attempts.
	srv := newScriptServer(t)
	var mu sync.Mutex
	seen := map[string]bool{}
	srv.fallback = func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Number")
		mu.Lock()
		retry := seen[id]
		seen[id] = true
		mu.Unlock()
		switch {
		case retry:
			reply(200, "ok")(w, r)
		case len(id)%2 == 0:
			reply(500, envelope500(trackingA))(w, r)
		default:
			reply(429, "", "Retry-After: 0")(w, r)
		}
	}
	client := &http.Client{Transport: fastTransport(WithThrottleGate(false))}
	var wg sync.WaitGroup
	var number atomic.Int32
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/advancedqueries/run", strings.NewReader(`{"Query":"x"}`))
				req.Header.Set("X-Request-Number", fmt.Sprint(number.Add(1)))
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if n := len(srv.requests()); n != 2*16*20 {
		t.Errorf("server saw %d requests, want 640", n)
	}
}

func TestUnderReverseProxy(t *testing.T) {
	backend := newScriptServer(t, reply(503, ""))
	target, _ := url.Parse(backend.URL)
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: fastTransport(),
	})
	defer proxy.Close()

	resp, err := http.Get(proxy.URL + "/api/alerts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status through the proxy = %d, want 200 after a retry", resp.StatusCode)
	}
	if n := len(backend.requests()); n != 2 {
		t.Errorf("backend saw %d requests, want 2", n)
	}
}

func TestUserInfoNotSentAsBasicAuth(t *testing.T) {
	srv := newScriptServer(t)
	u, _ := url.Parse(srv.URL + "/api/alerts")
	u.User = url.UserPassword("user", "secret")
	req := mustRequest(t, http.MethodGet, u.String())
	resp, err := fastTransport().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := srv.requests()[0].auth; got != "" {
		t.Errorf("sent Authorization %q, want none as a plain transport", got)
	}
	if req.URL.User == nil {
		t.Errorf("caller's URL lost its user info")
	}
}

func TestErrorIsOneLine(t *testing.T) {
	srv := newScriptServer(t, reply(400, `{"error":{"code":"BadRequest\nFAKE","message":"first\nlevel=ERROR \u001b[31m","target":"t\r\n1"}}`))
	_, err := fastTransport().RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n\x1b") {
		t.Errorf("message has control characters: %q", msg)
	}
	if got := oneLine("a\u2028b\u202ec\xffd"); got != "a b c\uFFFDd" {
		t.Errorf("oneLine = %q, want separators and bidi controls as spaces, invalid UTF-8 as U+FFFD", got)
	}
	if xerr := mustAsError(t, err); xerr.Message != "first\nlevel=ERROR \x1b[31m" {
		t.Errorf("Message = %q, want the raw text kept in the field", xerr.Message)
	}
}

func TestGzipErrorBody(t *testing.T) {
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	io.WriteString(zw, `{"error":{"code":"ResourceNotFound","message":"gone","target":"`+trackingA+`"}}`)
	zw.Close()
	srv := newScriptServer(t, reply(404, zipped.String(), "Content-Encoding: gzip"))
	req := mustRequest(t, http.MethodGet, srv.URL+"/api/machines/x")
	req.Header.Set("Accept-Encoding", "gzip")
	_, err := fastTransport().RoundTrip(req)
	xerr := mustAsError(t, err)
	if xerr.Code != "ResourceNotFound" || xerr.TrackingID != trackingA {
		t.Errorf("code %q tracking ID %q, want the compressed envelope's", xerr.Code, xerr.TrackingID)
	}
}

func TestCancelDuringErrorBody(t *testing.T) {
	for _, status := range []int{404, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			srv := newScriptServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
				io.WriteString(w, `{"error":{"code":"x",`)
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			var hooks int
			tr := fastTransport(WithRetryHook(func(RetryEvent) { hooks++ }))
			time.AfterFunc(20*time.Millisecond, cancel)
			_, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts").WithContext(ctx))
			xerr := mustAsError(t, err)
			if !errors.Is(err, context.Canceled) || xerr.Transient() {
				t.Errorf("err = %v, want a cancelled, not transient, error", err)
			}
			if hooks != 0 {
				t.Errorf("retry hook called %d times after the cancel", hooks)
			}
		})
	}
}

func TestBufferedBodyHonoursDeadline(t *testing.T) {
	srv := newScriptServer(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/upload", pr)
	_, err := fastTransport().RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the deadline", err)
	}
	mustAsError(t, err)
}

func TestBodyReadErrorNotRetried(t *testing.T) {
	// io.ErrUnexpectedEOF from the caller's body looks like a dropped
	// connection, but sending the body again would fail the same way.
	srv := newScriptServer(t)
	newBody := func() io.Reader {
		return io.MultiReader(strings.NewReader("part"), truncatedReader{})
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload", newBody())
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(newBody()), nil }
	req.ContentLength = 100
	_, err := fastTransport().RoundTrip(req)
	xerr := mustAsError(t, err)
	if !errors.Is(err, io.ErrUnexpectedEOF) || xerr.Attempts != 1 {
		t.Errorf("err = %v after %d attempts, want the body's error after 1", err, xerr.Attempts)
	}
	if xerr.Transient() {
		t.Errorf("Transient() = true for a body that cannot be read")
	}
}

func TestGetBodyErrorNotTransient(t *testing.T) {
	srv := newScriptServer(t, reply(500, envelope500(trackingA)))
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload", strings.NewReader("data"))
	req.GetBody = func() (io.ReadCloser, error) { return nil, os.ErrNotExist }
	_, err := fastTransport().RoundTrip(req)
	xerr := mustAsError(t, err)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want GetBody's error", err)
	}
	if xerr.Transient() {
		t.Errorf("Transient() = true when GetBody fails")
	}
}

type truncatedReader struct{}

func (truncatedReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestMalformedRequests(t *testing.T) {
	t.Run("nil URL", func(t *testing.T) {
		_, err := New(nil).RoundTrip(&http.Request{Method: http.MethodGet, Header: http.Header{}})
		mustAsError(t, err)
		if !errors.Is(err, errNilURL) {
			t.Errorf("err = %v, want errNilURL", err)
		}
	})
	t.Run("nil header refreshed", func(t *testing.T) {
		srv := newScriptServer(t, reply(401, ""))
		req := mustRequest(t, http.MethodGet, srv.URL+"/api/alerts")
		req.Header = nil
		resp, err := fastTransport(WithTokenRefresh(refreshTo("good"))).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := srv.requests()[1].auth; got != "Bearer good" {
			t.Errorf("retry sent Authorization %q", got)
		}
	})
}

// headerWriter sets a header on each request it sends, as some
// middlewares do although a RoundTripper should not.
type headerWriter struct{ http.RoundTripper }

func (h headerWriter) RoundTrip(req *http.Request) (*http.Response, error) {
	req.Header.Set("X-Stamp", req.URL.Path)
	return h.RoundTripper.RoundTrip(req)
}

// TestBaseGetsRequestHeader checks that the base transport gets each
// request's own header, not the empty map that the inner http.Client
// gets, so that a base that writes into the header touches no other
// request.
func TestBaseGetsRequestHeader(t *testing.T) {
	srv := newScriptServer(t, reply(500, ""))
	tr := New(headerWriter{srv.Client().Transport}, WithBackoff(time.Millisecond, time.Millisecond))

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			req := mustRequest(t, http.MethodGet, fmt.Sprintf("%s/api/alerts/%d", srv.URL, i))
			req.Header.Set("X-Caller", strconv.Itoa(i))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	if len(innerHeader) != 0 {
		t.Errorf("the inner client's header was written: %v", innerHeader)
	}
	for _, r := range srv.requests() {
		if want := strings.TrimPrefix(r.path, "/api/alerts/"); r.header.Get("X-Caller") != want {
			t.Errorf("%s sent X-Caller %q", r.path, r.header.Get("X-Caller"))
		}
	}
}

// nilBodyTransport returns the server's responses with a nil Body, as a
// careless custom transport might.
type nilBodyTransport struct{ http.RoundTripper }

func (n nilBodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := n.RoundTripper.RoundTrip(req)
	if resp != nil {
		resp.Body.Close()
		resp.Body = nil
	}
	return resp, err
}

func TestNilResponseBody(t *testing.T) {
	t.Run("with content", func(t *testing.T) {
		// net/http's client rejects the response; the caller gets that as
		// a typed error.
		srv := newScriptServer(t, reply(500, envelope500(trackingA)))
		tr := New(nilBodyTransport{&http.Transport{}}, WithBackoff(time.Millisecond, time.Millisecond))
		_, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
		xerr := mustAsError(t, err)
		if xerr.Err == nil || !strings.Contains(xerr.Err.Error(), "nil Body") {
			t.Errorf("err = %v, want the nil Body reported", err)
		}
	})
	t.Run("with an attempt timeout", func(t *testing.T) {
		srv := newScriptServer(t, reply(503, ""), reply(200, ""))
		tr := New(nilBodyTransport{&http.Transport{}}, WithBackoff(time.Millisecond, time.Millisecond), WithAttemptTimeout(time.Second))
		resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(resp.Body); err != nil {
			t.Errorf("reading the body: %v", err)
		}
		resp.Body.Close()
	})
	t.Run("empty", func(t *testing.T) {
		srv := newScriptServer(t, reply(503, ""), reply(404, ""))
		tr := New(nilBodyTransport{&http.Transport{}}, WithBackoff(time.Millisecond, time.Millisecond))
		_, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want NotFound after a retry", err)
		}
	})
}

func TestFailFastLoggedAtDebug(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := newScriptServer(t, reply(404, ""))
	_, err := fastTransport(WithLogger(logger)).RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/machines/x"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(buf.String(), "level=DEBUG") || strings.Contains(buf.String(), "level=WARN") {
		t.Errorf("a fail-fast 404 should log at Debug only:\n%s", buf.String())
	}
}

func TestRetryLogNamesEmptyMethodGET(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := newScriptServer(t, reply(500, envelope500(trackingA)))
	req := mustRequest(t, http.MethodGet, srv.URL+"/api/alerts")
	req.Method = ""
	resp, err := fastTransport(WithLogger(logger)).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(buf.String(), `msg="retrying request" method=GET`) {
		t.Errorf("retry not logged with method=GET:\n%s", buf.String())
	}
}

func TestGiveUpLogsRetryAfter(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	quota := `{"error":{"code":"429","message":"API calls quota exceeded! maximum allowed 1500 per 01:00:00","target":"t"}}`
	srv := newScriptServer(t, reply(429, quota))
	_, err := fastTransport(WithLogger(logger)).RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	if !errors.Is(err, ErrWaitTooLong) {
		t.Fatalf("err = %v, want ErrWaitTooLong", err)
	}
	if !strings.Contains(buf.String(), "retry_after=1h0m0s") {
		t.Errorf("log does not give the hour to wait:\n%s", buf.String())
	}
}

func TestErrorResponsesMode(t *testing.T) {
	bigMessage := strings.Repeat("m", 100<<10)
	notFound := `{"error":{"code":"NotFound","message":"` + bigMessage + `","target":"` + trackingA + `"}}`
	tests := []struct {
		name     string
		steps    []step
		status   int
		body     string
		code     string
		attempts int
	}{
		{"fail-fast 404 over the peek limit", []step{reply(404, notFound)}, 404, notFound, "NotFound", 1},
		{"exhausted 503", []step{reply(503, "a"), reply(503, "b"), reply(503, "last")}, 503, "last", "ServiceUnavailable", 3},
		{"401 without refresh", []step{reply(401, `{"error":{"code":"Unauthorized"}}`)}, 401, `{"error":{"code":"Unauthorized"}}`, "Unauthorized", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScriptServer(t, tc.steps...)
			var outcome Outcome
			tr := fastTransport(WithErrorResponses(true), WithMaxRetries(2), WithOutcomeHook(func(o Outcome) { outcome = o }))
			req := mustRequest(t, http.MethodGet, srv.URL+"/api/machines/x")
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("err = %v, want the response", err)
			}
			body, readErr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if readErr != nil || string(body) != tc.body {
				t.Errorf("body of %d bytes (err %v) differs from the %d sent", len(body), readErr, len(tc.body))
			}
			if resp.StatusCode != tc.status || resp.Request != req {
				t.Errorf("status %d, request is the caller's: %v", resp.StatusCode, resp.Request == req)
			}
			xerr := ErrorFromResponse(resp)
			if xerr == nil || xerr.Code != tc.code || xerr.Attempts != tc.attempts {
				t.Fatalf("ErrorFromResponse = %+v, want code %s after %d attempts", xerr, tc.code, tc.attempts)
			}
			if outcome.Err == nil || outcome.StatusCode != tc.status {
				t.Errorf("outcome = %+v, want the failure reported", outcome)
			}
		})
	}

	t.Run("success has no error", func(t *testing.T) {
		srv := newScriptServer(t)
		resp, err := fastTransport(WithErrorResponses(true)).RoundTrip(mustRequest(t, http.MethodGet, srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ErrorFromResponse(resp) != nil || ErrorFromResponse(nil) != nil {
			t.Errorf("ErrorFromResponse returned an error for a success or nil")
		}
	})
	t.Run("network failure is still an Error", func(t *testing.T) {
		srv := newScriptServer(t)
		srv.fallback = hangUp()
		_, err := fastTransport(WithErrorResponses(true), WithMaxRetries(1)).RoundTrip(mustRequest(t, http.MethodGet, srv.URL))
		mustAsError(t, err)
	})
	t.Run("connection reused", func(t *testing.T) {
		srv := newScriptServer(t)
		srv.fallback = reply(404, notFound)
		client := &http.Client{Transport: New(&http.Transport{}, WithErrorResponses(true))}
		for range 20 {
			resp, err := client.Get(srv.URL + "/api/machines/x")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if n := srv.conns.Load(); n != 1 {
			t.Errorf("opened %d connections, want 1", n)
		}
	})
}

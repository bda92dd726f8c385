package xdrretry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// slowHeaders returns a step that waits d before it writes the headers,
// or until the client goes away.
func slowHeaders(d time.Duration) step {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		reply(200, "late")(w, r)
	}
}

func TestAttemptTimeoutRetries(t *testing.T) {
	srv := newScriptServer(t, slowHeaders(5*time.Second))
	var events []RetryEvent
	tr := fastTransport(WithAttemptTimeout(50*time.Millisecond), WithRetryHook(func(ev RetryEvent) { events = append(events, ev) }))
	resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Errorf("body = %q, want the second attempt's", body)
	}
	if len(events) != 1 {
		t.Fatalf("retries = %d, want 1", len(events))
	}
	var netErr net.Error
	if !errors.As(events[0].Err, &netErr) || !netErr.Timeout() {
		t.Errorf("retry cause = %v, want a timeout", events[0].Err)
	}
}

func TestAttemptTimeoutNeverCutsBody(t *testing.T) {
	// Headers arrive at once; the body takes longer than the attempt
	// timeout and must still arrive whole.
	srv := newScriptServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for range 5 {
			time.Sleep(30 * time.Millisecond)
			io.WriteString(w, "chunk ")
			w.(http.Flusher).Flush()
		}
	})
	tr := fastTransport(WithAttemptTimeout(40 * time.Millisecond))
	resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != strings.Repeat("chunk ", 5) {
		t.Errorf("body = %q, err = %v; want five chunks", body, err)
	}
}

func TestAttemptTimeoutExhausts(t *testing.T) {
	srv := newScriptServer(t)
	srv.fallback = slowHeaders(5 * time.Second)
	_, err := fastTransport(WithMaxRetries(2), WithAttemptTimeout(20*time.Millisecond)).
		RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	xerr := mustAsError(t, err)
	var timeout *attemptTimeoutError
	if !errors.As(err, &timeout) || xerr.Attempts != 3 {
		t.Errorf("err = %v (attempts %d), want three attempt timeouts", err, xerr.Attempts)
	}
	if !errors.Is(err, ErrRetriesExhausted) {
		t.Errorf("err = %v, want ErrRetriesExhausted", err)
	}
}

// stalledBody returns a step that writes status with a Content-Length of
// 1,000, sends the first bytes of a Defender envelope and then stalls
// until the client goes away.
func stalledBody(status int) step {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(status)
		io.WriteString(w, `{"error":{"code":"Inter`)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}
}

func TestStalledErrorBodyTimesOut(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		opts     []Option
		code     string
		attempts int
	}{
		{"attempt timeout, 500", 500, []Option{WithMaxRetries(1), WithAttemptTimeout(50 * time.Millisecond)}, "InternalServerError", 2},
		{"attempt timeout, 404", 404, []Option{WithAttemptTimeout(50 * time.Millisecond)}, "NotFound", 1},
		{"max elapsed, 500", 500, []Option{WithMaxRetries(0), WithMaxElapsed(100 * time.Millisecond)}, "InternalServerError", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScriptServer(t)
			srv.fallback = stalledBody(tc.status)
			// The deadline only keeps a broken build from hanging the
			// suite; the test fails if it is what ends the request.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			req := mustRequest(t, http.MethodGet, srv.URL+"/api/alerts")
			_, err := fastTransport(tc.opts...).RoundTrip(req.WithContext(ctx))
			xerr := mustAsError(t, err)
			if ctx.Err() != nil {
				t.Fatalf("the request ran until the test's deadline: %v", err)
			}
			var timeout *attemptTimeoutError
			if !errors.As(err, &timeout) || !timeout.body {
				t.Errorf("err = %v, want the error body's timeout as the cause", err)
			}
			if xerr.Code != tc.code || xerr.StatusCode != tc.status {
				t.Errorf("code = %q, status = %d; want %q, %d", xerr.Code, xerr.StatusCode, tc.code, tc.status)
			}
			if xerr.Attempts != tc.attempts {
				t.Errorf("attempts = %d, want %d", xerr.Attempts, tc.attempts)
			}
		})
	}
}

// TestErrorResponseBodyNotCutAfterCheck checks that an error response
// returned to the caller either reads whole or names the timeout as its
// cause: the attempt limit must not cut the body after the check.
func TestErrorResponseBodyNotCutAfterCheck(t *testing.T) {
	body := `{"error":{"code":"NotFound","message":"` + strings.Repeat("m", 200<<10) + `"}}`
	srv := newScriptServer(t)
	srv.fallback = reply(404, body)
	for i := range 200 {
		limit := time.Duration(200+i*4) * time.Microsecond
		tr := fastTransport(WithErrorResponses(true), WithAttemptTimeout(limit))
		resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts/x"))
		if err != nil {
			continue // the headers did not arrive in time
		}
		got, readErr := io.ReadAll(resp.Body)
		resp.Body.Close()
		xerr := ErrorFromResponse(resp)
		var timeout *attemptTimeoutError
		if readErr != nil && !errors.As(xerr, &timeout) {
			t.Fatalf("limit %v: read %d of %d bytes (%v), but the error's cause is %v", limit, len(got), len(body), readErr, xerr.Err)
		}
	}
}

func TestAttemptTimeoutKeepsUpgradeBody(t *testing.T) {
	// The server switches to a protocol that echoes what it reads.
	srv := newScriptServer(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	})
	req := mustRequest(t, http.MethodGet, srv.URL+"/api/stream")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := fastTransport(WithAttemptTimeout(time.Second)).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %d, want 101", resp.StatusCode)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("body %T cannot be written to", resp.Body)
	}
	if _, err := io.WriteString(rw, "ping"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(rw, got); err != nil || string(got) != "ping" {
		t.Errorf("echo = %q, %v; want ping", got, err)
	}
}

func TestMaxElapsedStopsWaits(t *testing.T) {
	srv := newScriptServer(t)
	srv.fallback = reply(500, envelope500(trackingA))
	tr, clock := newFakeClockTransport(time.Now(), WithMaxRetries(10), WithMaxElapsed(10*time.Second))
	_, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	xerr := mustAsError(t, err)
	if !errors.Is(err, ErrWaitTooLong) {
		t.Errorf("err = %v, want ErrWaitTooLong", err)
	}
	var slept time.Duration
	for _, w := range clock.all() {
		slept += w
	}
	if slept > 10*time.Second {
		t.Errorf("slept %v in all, past the 10 s maximum elapsed time", slept)
	}
	if xerr.Attempts >= 11 || xerr.TrackingID != trackingA {
		t.Errorf("attempts %d, tracking ID %q", xerr.Attempts, xerr.TrackingID)
	}
}

func TestMaxElapsedLimitsAttempt(t *testing.T) {
	srv := newScriptServer(t)
	srv.fallback = slowHeaders(5 * time.Second)
	_, err := fastTransport(WithMaxElapsed(50 * time.Millisecond)).RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	var timeout *attemptTimeoutError
	if !errors.As(err, &timeout) {
		t.Errorf("err = %v, want an attempt timeout", err)
	}
}

func TestContextDeadlineBeatsMaxElapsed(t *testing.T) {
	srv := newScriptServer(t)
	srv.fallback = slowHeaders(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := fastTransport(WithMaxElapsed(time.Hour)).RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts").WithContext(ctx))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context deadline", err)
	}
	mustAsError(t, err)
}

func TestContextWithOptions(t *testing.T) {
	t.Run("no retries for one request", func(t *testing.T) {
		srv := newScriptServer(t)
		srv.fallback = reply(500, envelope500(trackingA))
		tr := fastTransport()
		ctx := ContextWithOptions(context.Background(), WithMaxRetries(0))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/machines/m1/isolate", strings.NewReader("{}"))
		_, err := tr.RoundTrip(req)
		if xerr := mustAsError(t, err); xerr.Attempts != 1 {
			t.Errorf("attempts = %d, want 1", xerr.Attempts)
		}
		// The Transport's own policy is unchanged for other requests.
		_, err = tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
		if xerr := mustAsError(t, err); xerr.Attempts != 5 {
			t.Errorf("attempts = %d, want 5", xerr.Attempts)
		}
	})
	t.Run("longer wait for one request", func(t *testing.T) {
		srv := newScriptServer(t, reply(429, "", "Retry-After: 600"))
		tr, clock := newFakeClockTransport(time.Now(), WithThrottleGate(false))
		ctx := ContextWithOptions(context.Background(), WithMaxWait(time.Hour))
		resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts").WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if w := clock.all(); len(w) != 1 || w[0] != 10*time.Minute {
			t.Errorf("waits = %v, want 10m", w)
		}
	})
	t.Run("nested contexts add up", func(t *testing.T) {
		ctx := ContextWithOptions(context.Background(), WithMaxRetries(1))
		ctx = ContextWithOptions(ctx, WithMaxWait(time.Hour))
		p := New(nil).policyFor(ctx)
		if p.maxRetries != 1 || p.maxWait != time.Hour {
			t.Errorf("policy = %+v, want both options", p)
		}
	})
}

func TestRetryMethods(t *testing.T) {
	tr := fastTransport(WithRetryMethods(http.MethodGet), WithTokenRefresh(refreshTo("good")))
	t.Run("POST is not retried", func(t *testing.T) {
		srv := newScriptServer(t, reply(503, ""))
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/machines/m1/isolate", strings.NewReader("{}"))
		_, err := tr.RoundTrip(req)
		xerr := mustAsError(t, err)
		if xerr.Attempts != 1 || !xerr.Transient() {
			t.Errorf("attempts %d transient %v, want 1 and true", xerr.Attempts, xerr.Transient())
		}
	})
	t.Run("GET is retried", func(t *testing.T) {
		srv := newScriptServer(t, reply(503, ""))
		resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	})
	t.Run("empty method is GET", func(t *testing.T) {
		srv := newScriptServer(t, reply(503, ""))
		req := mustRequest(t, http.MethodGet, srv.URL+"/api/alerts")
		req.Method = ""
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if n := len(srv.requests()); n != 2 {
			t.Errorf("sent %d requests, want a retry", n)
		}
	})
	t.Run("POST is refreshed", func(t *testing.T) {
		srv := newScriptServer(t, reply(401, ""))
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/machines/m1/isolate", strings.NewReader("{}"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	})
}

func TestOutcomeHook(t *testing.T) {
	var outcomes []Outcome
	tr, _ := newFakeClockTransport(time.Now(), WithTokenRefresh(refreshTo("good")), WithOutcomeHook(func(o Outcome) { outcomes = append(outcomes, o) }))
	srv := newScriptServer(t,
		reply(500, envelope500(trackingA)), reply(401, ""), reply(200, "ok"),
		reply(404, `{"error":{"code":"NotFound","message":"x","target":"`+trackingB+`"}}`),
	)
	resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, err = tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/machines/x"))
	if err == nil {
		t.Fatal("want the 404")
	}

	if len(outcomes) != 2 {
		t.Fatalf("outcome hook called %d times for 2 requests", len(outcomes))
	}
	ok, failed := outcomes[0], outcomes[1]
	if ok.Err != nil || ok.StatusCode != 200 || ok.Attempts != 3 || ok.Retries != 1 || !ok.Refreshed {
		t.Errorf("success outcome = %+v", ok)
	}
	if failed.Err != err || failed.StatusCode != 404 || failed.Code != "NotFound" || failed.TrackingID != trackingB || failed.Attempts != 1 {
		t.Errorf("failure outcome = %+v", failed)
	}

	// A request that cannot be sent has an outcome too.
	_, err = tr.RoundTrip(&http.Request{Header: http.Header{}})
	if len(outcomes) != 3 || outcomes[2].Err != err || outcomes[2].Attempts != 0 {
		t.Errorf("outcomes after a request without a URL = %+v, want a third with its error", outcomes)
	}
	if xerr := mustAsError(t, err); xerr.Method != http.MethodGet {
		t.Errorf("Method = %q, want GET for an empty method", xerr.Method)
	}
}

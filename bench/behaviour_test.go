package bench

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdrretry/xdrretry/xdrtest"
)

// The tests in this file count what each contender sends in four
// situations and log one table row per contender. They assert only
// xdrretry's counts. Run them with
//
//	go test -run 'Test' -v .
//
// and read the Markdown table that each test logs at its end.

// callTimeout bounds each request of a behaviour test, retries included.
const callTimeout = 30 * time.Second

// table collects the rows of one behaviour test and logs them as a
// Markdown table.
type table struct {
	header string
	rows   []string
}

func (tb *table) add(format string, args ...any) {
	tb.rows = append(tb.rows, fmt.Sprintf(format, args...))
}

func (tb *table) log(t *testing.T) {
	columns := strings.Count(tb.header, "|") - 1
	t.Log(tb.header)
	t.Log("|" + strings.Repeat(" --- |", columns))
	for _, row := range tb.rows {
		t.Log(row)
	}
}

// runConcurrently runs fn(i) for i in [0, n) on n goroutines that start
// together, and waits for all of them.
func runConcurrently(n int, fn func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			fn(i)
		})
	}
	start.Done()
	done.Wait()
}

// TestThrottleWindow counts the requests that 200 concurrent callers send
// into a quota window that one 429 has already announced. For the first
// second after the first request, the server responds to every request
// with a 429 and "Retry-After: 1". One request meets the first 429. The
// 200 callers start together 50 ms after the server sent it, which is
// ample time for a client on loopback to read it.
func TestThrottleWindow(t *testing.T) {
	const (
		callers = 200
		window  = time.Second
		settle  = 50 * time.Millisecond
	)
	results := table{header: "| contender | requests into the window after the first 429 | requests in all | callers that failed |"}
	for _, c := range contenders {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			var (
				once      sync.Once
				opened    time.Time
				firstSent = make(chan struct{})
				throttled atomic.Int64
			)
			f.srv.SetFaultFunc(func(*http.Request) (xdrtest.Fault, bool) {
				now := time.Now()
				once.Do(func() {
					opened = now
					close(firstSent)
				})
				if now.Sub(opened) < window {
					throttled.Add(1)
					return xdrtest.Throttle("1"), true
				}
				return xdrtest.Fault{}, false
			})
			client := c.newClient(f.base, nil)

			ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
			defer cancel()
			var failed atomic.Int64
			call := func(int) {
				status, err := get(ctx, client, f.alertURL, f.token)
				if err != nil || status != http.StatusOK {
					failed.Add(1)
				}
			}

			var first sync.WaitGroup
			first.Go(func() { call(0) })
			select {
			case <-firstSent:
			case <-ctx.Done():
				t.Fatal("timed out waiting for the first request")
			}
			time.Sleep(settle)
			runConcurrently(callers, call)
			first.Wait()

			// The first request met the first 429; the rest came later.
			intoWindow := throttled.Load() - 1
			total := len(f.srv.Requests())
			results.add("| %s | %d | %d | %d |", c.name, intoWindow, total, failed.Load())
			t.Logf("contender=%s into_window=%d requests=%d failed=%d", c.name, intoWindow, total, failed.Load())

			if c.name == "xdrretry" {
				if intoWindow != 0 {
					t.Errorf("xdrretry sent %d requests into the announced window, want 0", intoWindow)
				}
				if failed.Load() != 0 {
					t.Errorf("%d xdrretry callers failed, want 0", failed.Load())
				}
			}
		})
	}
	results.log(t)
}

// TestConnectionsNotFound counts the TCP connections that 1,000
// sequential requests for a missing alert open. Each ends at once with a
// 404, and the caller reads and closes any response body.
func TestConnectionsNotFound(t *testing.T) {
	const requests = 1000
	results := table{header: "| contender | new connections | requests in all |"}
	for _, c := range contenders {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			client := c.newClient(f.base, nil)
			ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
			defer cancel()

			for i := range requests {
				status, err := get(ctx, client, f.missingURL, f.token)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if status != http.StatusNotFound {
					t.Fatalf("request %d ended with status %d, want 404", i, status)
				}
			}
			conns := f.srv.Connections()
			total := len(f.srv.Requests())
			results.add("| %s | %d | %d |", c.name, conns, total)
			t.Logf("contender=%s connections=%d requests=%d", c.name, conns, total)

			if c.name == "xdrretry" && conns != 1 {
				t.Errorf("xdrretry opened %d connections for %d sequential 404s, want 1", conns, requests)
			}
		})
	}
	results.log(t)
}

// TestRetryStorm counts the requests that 64 concurrent callers send to a
// server that fails every request, one request per caller. The 500 case
// is the one that the Defender APIs return for an internal error. Kiota
// does not retry a 500, so the 503 case (without Retry-After) shows its
// retries too. That case takes up to 20 s, because Kiota waits at least
// 1 s, 2 s, 4 s and 8 s.
func TestRetryStorm(t *testing.T) {
	const (
		callers = 64
		// maxBudgetRetries is what xdrretry's default retry budget allows:
		// 500 tokens at 5 a retry.
		maxBudgetRetries = 100
	)
	for _, failure := range []struct {
		status int
		code   string
	}{
		{http.StatusInternalServerError, "InternalServerError"},
		{http.StatusServiceUnavailable, "ServiceUnavailable"},
	} {
		t.Run(fmt.Sprintf("status=%d", failure.status), func(t *testing.T) {
			results := table{header: "| contender | requests in all | new connections | callers that failed |"}
			fault := xdrtest.ErrorCode(failure.status, failure.code, "The service failed to handle the request")
			for _, c := range contenders {
				t.Run(c.name, func(t *testing.T) {
					f := newFixture(t)
					f.srv.SetFaultFunc(func(*http.Request) (xdrtest.Fault, bool) { return fault, true })
					client := c.newClient(f.base, nil)
					ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
					defer cancel()

					var failed, errored atomic.Int64
					runConcurrently(callers, func(int) {
						status, err := get(ctx, client, f.alertURL, f.token)
						if err != nil {
							errored.Add(1)
						}
						if err != nil || status != http.StatusOK {
							failed.Add(1)
						}
					})
					total := len(f.srv.Requests())
					conns := f.srv.Connections()
					results.add("| %s | %d | %d | %d |", c.name, total, conns, failed.Load())
					t.Logf("contender=%s requests=%d connections=%d failed=%d errors_without_status=%d",
						c.name, total, conns, failed.Load(), errored.Load())

					if c.name == "xdrretry" && total > callers+maxBudgetRetries {
						t.Errorf("xdrretry sent %d requests, want at most %d (one per caller plus the retry budget)",
							total, callers+maxBudgetRetries)
					}
				})
			}
			results.log(t)
		})
	}
}

// TestTokenRefreshBurst counts token refreshes when 100 concurrent
// requests carry one expired token. The refresh function gets a new token
// from the server after 10 ms, a stand-in for the latency of a token
// endpoint. xdrretry calls it from its refresh hook. The other contenders
// have no such hook, so each caller that gets a 401 calls it and sends
// its request once more: the simplest caller-side refresh, which shares
// nothing between callers.
func TestTokenRefreshBurst(t *testing.T) {
	const (
		callers        = 100
		refreshLatency = 10 * time.Millisecond
	)
	results := table{header: "| contender | refresh calls | requests in all | 401s returned to callers | callers that failed |"}
	for _, c := range contenders {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			expired := f.srv.IssueToken(time.Hour)
			f.srv.ExpireToken(expired)

			var refreshes atomic.Int64
			refresh := func(ctx context.Context) (string, error) {
				refreshes.Add(1)
				select {
				case <-time.After(refreshLatency):
				case <-ctx.Done():
					return "", ctx.Err()
				}
				return f.srv.IssueToken(time.Hour), nil
			}
			client := c.newClient(f.base, refresh)
			ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
			defer cancel()

			var returned401, failed atomic.Int64
			runConcurrently(callers, func(int) {
				status, err := get(ctx, client, f.alertURL, expired)
				if err == nil && status == http.StatusUnauthorized {
					returned401.Add(1)
					if !c.refreshes {
						var token string
						token, err = refresh(ctx)
						if err == nil {
							status, err = get(ctx, client, f.alertURL, token)
						}
					}
				}
				if err != nil || status != http.StatusOK {
					failed.Add(1)
				}
			})
			total := len(f.srv.Requests())
			results.add("| %s | %d | %d | %d | %d |", c.name, refreshes.Load(), total, returned401.Load(), failed.Load())
			t.Logf("contender=%s refreshes=%d requests=%d returned_401=%d failed=%d",
				c.name, refreshes.Load(), total, returned401.Load(), failed.Load())

			if c.name == "xdrretry" {
				if refreshes.Load() != 1 {
					t.Errorf("xdrretry called the refresh hook %d times, want 1", refreshes.Load())
				}
				if failed.Load() != 0 {
					t.Errorf("%d xdrretry callers failed, want 0", failed.Load())
				}
			}
		})
	}
	results.log(t)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/xdrretry/xdrretry"
	"github.com/xdrretry/xdrretry/xdrtest"
)

// scene is one step of the tour.
type scene struct {
	title  string
	method string
	path   string
	body   string
	setup  func(srv *xdrtest.Server, token string)
}

// tourScenes returns the four outcomes the tour shows.
func tourScenes() []scene {
	return []scene{
		{
			title:  "A 500 that heals",
			method: http.MethodGet,
			path:   "/api/machines",
			setup: func(srv *xdrtest.Server, _ string) {
				srv.Script("GET /api/machines", xdrtest.ErrorCode(500, "InternalServerError", "An unexpected error occurred."))
			},
		},
		{
			title:  "A throttled call",
			method: http.MethodPost,
			path:   "/api/advancedqueries/run",
			body:   `{"Query":"DeviceInfo | take 5"}`,
			setup: func(srv *xdrtest.Server, _ string) {
				srv.Script("POST /api/advancedqueries/run", xdrtest.Throttle("1"))
			},
		},
		{
			title:  "An expired token that is refreshed",
			method: http.MethodGet,
			path:   "/api/alerts",
			setup: func(srv *xdrtest.Server, token string) {
				srv.ExpireToken(token)
			},
		},
		{
			title:  "A 404 that fails fast",
			method: http.MethodGet,
			path:   "/api/machines/0000000000000000000000000000000000000000",
		},
	}
}

// tally counts the tour's outcomes for the summary.
type tally struct {
	calls, attempts, succeeded, failed, retries, refreshes int
	trackingIDs                                            []string
}

// runTour starts the fake API and runs the scenes against it.
func runTour(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	srv := xdrtest.NewServer()
	defer srv.Close()
	token := srv.IssueToken(time.Hour)

	fmt.Fprintf(stdout, "Fake Defender API at %s (loopback; no Azure tenant needed)\n", srv.URL)

	var (
		t       tally
		attempt int
	)
	opts := append(cfg.options(stderr),
		xdrretry.WithTokenRefresh(func(ctx context.Context, rejected *xdrretry.Error) (string, error) {
			t.refreshes++
			return srv.IssueToken(time.Hour), nil
		}),
		xdrretry.WithRetryHook(func(ev xdrretry.RetryEvent) {
			attempt = ev.Attempt
			t.retries++
			fmt.Fprintf(stdout, "   attempt %d: %s; %s\n", ev.Attempt, describeAttempt(ev), nextStep(ev))
		}),
	)
	client := &http.Client{Transport: xdrretry.New(nil, opts...)}
	defer client.CloseIdleConnections()

	for i, sc := range tourScenes() {
		if sc.setup != nil {
			sc.setup(srv, token)
		}
		attempt = 0
		fmt.Fprintf(stdout, "\n%d. %s: %s %s\n", i+1, sc.title, sc.method, sc.path)
		if err := callScene(ctx, client, srv.URL, token, sc, &attempt, &t, stdout); err != nil {
			fmt.Fprintf(stderr, "xdrcall: %v\n", err)
			return exitFailed
		}
	}

	fmt.Fprintf(stdout, "\nSummary: %d calls, %d attempts: %d succeeded (after %d retries, %d of them with a refreshed token), %d failed fast",
		t.calls, t.attempts, t.succeeded, t.retries, t.refreshes, t.failed)
	if len(t.trackingIDs) > 0 {
		fmt.Fprintf(stdout, " (tracking ID %s)", strings.Join(t.trackingIDs, ", "))
	}
	fmt.Fprintln(stdout, ".")
	return exitOK
}

// callScene sends one scene's request and prints its final attempt. It
// returns an error only when the tour itself cannot go on.
func callScene(ctx context.Context, client *http.Client, base, token string, sc scene, attempt *int, t *tally, stdout io.Writer) error {
	var body io.Reader
	if sc.body != "" {
		body = strings.NewReader(sc.body)
	}
	req, err := http.NewRequestWithContext(ctx, sc.method, base+sc.path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	t.calls++
	resp, err := client.Do(req)
	var xerr *xdrretry.Error
	switch {
	case errors.As(err, &xerr):
		t.attempts += xerr.Attempts
		t.failed++
		if xerr.TrackingID != "" {
			t.trackingIDs = append(t.trackingIDs, xerr.TrackingID)
		}
		fmt.Fprintf(stdout, "   attempt %d: %d %s, tracking ID %s; not retried\n", xerr.Attempts, xerr.StatusCode, xerr.Code, orNone(xerr.TrackingID))
		fmt.Fprintf(stdout, "   error: %v\n", xerr)
		return nil
	case err != nil:
		return fmt.Errorf("%s %s: %w", sc.method, sc.path, err)
	}
	defer resp.Body.Close()

	final := *attempt + 1
	t.attempts += final
	t.succeeded++
	fmt.Fprintf(stdout, "   attempt %d: %s%s\n", final, resp.Status, summarizeBody(resp.Body))
	return nil
}

// describeAttempt names a failed attempt: status, code and tracking ID, or
// the network error.
func describeAttempt(ev xdrretry.RetryEvent) string {
	if ev.StatusCode == 0 {
		return fmt.Sprintf("network error: %v", ev.Err)
	}
	return fmt.Sprintf("%d %s, tracking ID %s", ev.StatusCode, ev.Code, orNone(ev.TrackingID))
}

func nextStep(ev xdrretry.RetryEvent) string {
	if ev.Refresh {
		return "refreshing the token and sending again"
	}
	return fmt.Sprintf("retrying in %s", ev.Wait.Round(time.Millisecond))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// summarizeBody reads a success body and names what it holds, such as
// "(3 items)" for an OData list.
func summarizeBody(r io.Reader) string {
	var doc struct {
		Value   []json.RawMessage `json:"value"`
		Results []json.RawMessage `json:"Results"`
	}
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&doc); err != nil {
		return ""
	}
	switch {
	case doc.Value != nil:
		return fmt.Sprintf(" (%d items)", len(doc.Value))
	case doc.Results != nil:
		return fmt.Sprintf(" (%d result rows)", len(doc.Results))
	}
	return ""
}

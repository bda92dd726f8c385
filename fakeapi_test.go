package xdrretry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xdrretry/xdrretry"
	"github.com/xdrretry/xdrretry/xdrtest"
)

// newFakeAPI starts the fake Defender API and returns it with a valid
// token.
func newFakeAPI(t *testing.T) (*xdrtest.Server, string) {
	t.Helper()
	srv := xdrtest.NewServer()
	t.Cleanup(srv.Close)
	return srv, srv.IssueToken(time.Hour)
}

// newClient returns a client whose transport retries with millisecond
// waits over a transport of its own, so that connection counts are exact.
func newClient(t *testing.T, opts ...xdrretry.Option) *http.Client {
	t.Helper()
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	opts = append([]xdrretry.Option{xdrretry.WithBackoff(time.Millisecond, 2*time.Millisecond)}, opts...)
	return &http.Client{Transport: xdrretry.New(base, opts...)}
}

func get(t *testing.T, client *http.Client, url, token string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return client.Do(req)
}

func TestFakeAPITransientFaultsHeal(t *testing.T) {
	faults := map[string]xdrtest.Fault{
		"500 envelope":      xdrtest.ErrorCode(500, "InternalServerError", "An unexpected error occurred"),
		"graph 503":         xdrtest.GraphError(503, "ServiceUnavailable", "try later"),
		"429 Retry-After 0": xdrtest.Throttle("0"),
		"429 bare":          xdrtest.Throttle(""),
		"HTML 502":          xdrtest.HTML(502),
		"HTML 504":          xdrtest.HTML(504),
		"dropped":           xdrtest.Drop(),
		"reset":             xdrtest.Reset(),
		"20 MiB 500":        xdrtest.LargeBody(500, 20<<20),
	}
	for name, fault := range faults {
		t.Run(name, func(t *testing.T) {
			srv, token := newFakeAPI(t)
			srv.Script("GET /api/alerts", fault, fault)
			resp, err := get(t, newClient(t), srv.URL+"/api/alerts", token)
			if err != nil {
				t.Fatalf("err = %v, want the alerts after two faults", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"value"`) {
				t.Errorf("status %d body %.80q", resp.StatusCode, body)
			}
			if n := srv.Count("GET /api/alerts"); n != 3 {
				t.Errorf("server saw %d requests, want 3", n)
			}
		})
	}
}

func TestFakeAPIErrorCarriesServerTrackingID(t *testing.T) {
	tests := []struct {
		name  string
		fault xdrtest.Fault
		code  string
	}{
		{"defender 500", xdrtest.ErrorCode(500, "InternalServerError", "boom"), "InternalServerError"},
		{"graph 504", xdrtest.GraphError(504, "UnknownError", ""), "UnknownError"},
		{"throttle", xdrtest.Throttle("0"), "TooManyRequests"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, token := newFakeAPI(t)
			srv.Script("/api/machines", tc.fault.Times(3)...)
			_, err := get(t, newClient(t, xdrretry.WithMaxRetries(2)), srv.URL+"/api/machines", token)

			var xerr *xdrretry.Error
			if !errors.As(err, &xerr) {
				t.Fatalf("err = %v, want *xdrretry.Error", err)
			}
			recs := srv.Requests()
			if len(recs) != 3 {
				t.Fatalf("server saw %d requests, want 3", len(recs))
			}
			if xerr.Code != tc.code {
				t.Errorf("Code = %q, want %q", xerr.Code, tc.code)
			}
			if xerr.TrackingID == "" || xerr.TrackingID != recs[2].TrackingID {
				t.Errorf("TrackingID = %q, want the last response's %q", xerr.TrackingID, recs[2].TrackingID)
			}
			for i, h := range xerr.History {
				if h.TrackingID != recs[i].TrackingID {
					t.Errorf("History[%d].TrackingID = %q, want %q", i, h.TrackingID, recs[i].TrackingID)
				}
			}
		})
	}
}

func TestFakeAPIResetWrapsNetworkError(t *testing.T) {
	srv, token := newFakeAPI(t)
	srv.Script("/api/alerts", xdrtest.Reset().Times(2)...)
	_, err := get(t, newClient(t, xdrretry.WithMaxRetries(1)), srv.URL+"/api/alerts", token)
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Errorf("err = %v, want the reset wrapped", err)
	}
	if !errors.Is(err, xdrretry.ErrRetriesExhausted) {
		t.Errorf("err = %v, want ErrRetriesExhausted", err)
	}
}

func TestFakeAPIStalledErrorBodyRetried(t *testing.T) {
	srv, token := newFakeAPI(t)
	srv.Script("/api/alerts", xdrtest.ErrorCode(503, "ServiceUnavailable", "busy").WithStall(20))
	client := newClient(t, xdrretry.WithAttemptTimeout(100*time.Millisecond))
	resp, err := get(t, client, srv.URL+"/api/alerts", token)
	if err != nil {
		t.Fatalf("a stalled 503 was not retried: %v", err)
	}
	resp.Body.Close()
	if n := srv.Count("GET /api/alerts"); n != 2 {
		t.Errorf("server saw %d requests, want the stalled one and a retry", n)
	}
}

func TestFakeAPIFailFastReusesConnection(t *testing.T) {
	srv, token := newFakeAPI(t)
	client := newClient(t)
	for i := range 200 {
		_, err := get(t, client, srv.URL+"/api/machines/0000000000000000000000000000000000000000", token)
		if !errors.Is(err, xdrretry.ErrNotFound) {
			t.Fatalf("request %d: err = %v, want NotFound", i, err)
		}
	}
	if n := srv.Connections(); n != 1 {
		t.Errorf("200 fail-fast 404s opened %d connections, want 1", n)
	}
}

func TestFakeAPIExpiredTokenRefreshedOnce(t *testing.T) {
	const callers = 32
	srv, token := newFakeAPI(t)
	srv.ExpireToken(token)

	var refreshes atomic.Int32
	client := newClient(t, xdrretry.WithTokenRefresh(func(ctx context.Context, rejected *xdrretry.Error) (string, error) {
		refreshes.Add(1)
		if rejected.Challenge.Param("error") != "invalid_token" {
			t.Errorf("challenge = %+v, want invalid_token", rejected.Challenge)
		}
		// Give the other callers time to meet the same 401.
		time.Sleep(20 * time.Millisecond)
		return srv.IssueToken(time.Hour), nil
	}))

	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := get(t, client, srv.URL+"/api/alerts", token)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	if n := refreshes.Load(); n != 1 {
		t.Errorf("refreshed %d times for one expired token, want 1", n)
	}
}

func TestFakeAPIMachineActionFailsFast(t *testing.T) {
	srv, token := newFakeAPI(t)
	client := newClient(t)
	machine := srv.Machines()[0].ID
	isolate := func(body string) error {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/machines/"+machine+"/isolate", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}

	if err := isolate(`{"IsolationType":"Full"}`); !errors.Is(err, xdrretry.ErrMissingRequiredParameter) {
		t.Errorf("without Comment: err = %v, want MissingRequiredParameter", err)
	}
	if err := isolate(`{"comment":"x","IsolationType":"Full"}`); !errors.Is(err, xdrretry.ErrInvalidRequestBody) {
		t.Errorf("wrong-case field: err = %v, want InvalidRequestBody", err)
	}
	if err := isolate(`{"Comment":"contain","IsolationType":"Full"}`); err != nil {
		t.Fatalf("first isolate: %v", err)
	}
	err := isolate(`{"Comment":"again","IsolationType":"Full"}`)
	if !errors.Is(err, xdrretry.ErrActiveRequestAlreadyExists) {
		t.Errorf("second isolate: err = %v, want ActiveRequestAlreadyExists", err)
	}
	if n := srv.Count("POST /api/machines/{id}/isolate"); n != 4 {
		t.Errorf("server saw %d isolate requests, want 4 (no retries)", n)
	}
}

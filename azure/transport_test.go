package azure

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdrretry/xdrretry"
	"github.com/xdrretry/xdrretry/xdrtest"
)

func TestTransportSetsBearerToken(t *testing.T) {
	srv, base := newTLSAPI(t)
	cred := &cachingCredential{srv: srv}
	tr := NewTransport(cred, base, []string{DefenderScope})

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/alerts", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	if got := tokensSeen(srv); !slices.Equal(got, []string{cred.Current()}) {
		t.Errorf("server saw tokens %q, want the credential's %q", got, cred.Current())
	}
	if got := req.Header.Get("Authorization"); got != "" {
		t.Errorf("caller's request was modified: Authorization = %q", got)
	}
	if resp.Request != req {
		t.Errorf("resp.Request is not the caller's request")
	}
	calls := cred.Calls()
	if len(calls) != 1 {
		t.Fatalf("credential called %d times, want 1", len(calls))
	}
	if !slices.Equal(calls[0].Scopes, []string{DefenderScope}) {
		t.Errorf("scopes = %q, want %q", calls[0].Scopes, DefenderScope)
	}
	if !calls[0].EnableCAE {
		t.Errorf("EnableCAE = false, want true")
	}
	if calls[0].Claims != "" {
		t.Errorf("claims = %q, want none", calls[0].Claims)
	}
}

func TestTransportKeepsCallerToken(t *testing.T) {
	srv, base := newTLSAPI(t)
	cred := &cachingCredential{srv: srv}
	tr := NewTransport(cred, base, []string{DefenderScope})
	own := srv.IssueToken(time.Hour)

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/machines", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+own)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	resp.Body.Close()

	if got := tokensSeen(srv); !slices.Equal(got, []string{own}) {
		t.Errorf("server saw tokens %q, want the caller's %q", got, own)
	}
	if n := len(cred.Calls()); n != 0 {
		t.Errorf("credential called %d times, want 0", n)
	}
}

func TestTransportRejectsPlainHTTP(t *testing.T) {
	srv := xdrtest.NewServer() // plain http
	defer srv.Close()
	cred := &cachingCredential{srv: srv}
	tr := NewTransport(cred, nil, []string{DefenderScope})

	body := &closeRecorder{Reader: strings.NewReader(`{"Query":"DeviceInfo"}`)}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/advancedqueries/run?x=secret", body)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.RoundTrip(req)
	if err == nil {
		t.Fatal("RoundTrip over http succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "must use https") {
		t.Errorf("error = %q, want it to say that https is required", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error = %q, contains the query", err)
	}
	if n := len(cred.Calls()); n != 0 {
		t.Errorf("credential called %d times, want 0", n)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("server got %d requests, want 0", n)
	}
	if !body.closed {
		t.Errorf("request body not closed")
	}
}

func TestTransportCredentialError(t *testing.T) {
	srv, base := newTLSAPI(t)
	cred := &cachingCredential{srv: srv, err: errCredentialDown}
	tr := NewTransport(cred, base, []string{DefenderScope})

	body := &closeRecorder{Reader: strings.NewReader("{}")}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/machines/m1/isolate", body)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.RoundTrip(req)
	if !errors.Is(err, errCredentialDown) {
		t.Errorf("error = %v, want it to wrap the credential's error", err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("server got %d requests, want 0", n)
	}
	if !body.closed {
		t.Errorf("request body not closed")
	}
}

func TestTransportHealsServerError(t *testing.T) {
	srv, base := newTLSAPI(t)
	srv.Script("GET /api/alerts", xdrtest.ErrorCode(http.StatusInternalServerError, "InternalServerError", "try again"))
	cred := &cachingCredential{srv: srv}
	client := &http.Client{Transport: NewTransport(cred, base, []string{DefenderScope}, fastRetries)}

	resp, err := client.Get(srv.URL + "/api/alerts")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	if n := srv.Count("GET /api/alerts"); n != 2 {
		t.Errorf("server got %d requests, want 2", n)
	}
	if n := len(cred.Calls()); n != 1 {
		t.Errorf("credential called %d times, want 1: a retry reuses the token", n)
	}
}

func TestTransportFailsFastWithTypedError(t *testing.T) {
	srv, base := newTLSAPI(t)
	cred := &cachingCredential{srv: srv}
	client := &http.Client{Transport: NewTransport(cred, base, []string{DefenderScope}, fastRetries)}

	_, err := client.Get(srv.URL + "/api/alerts/no-such-alert")
	var xerr *xdrretry.Error
	if !errors.As(err, &xerr) {
		t.Fatalf("error = %v, want an *xdrretry.Error", err)
	}
	if xerr.StatusCode != http.StatusNotFound {
		t.Errorf("status = %d, want 404", xerr.StatusCode)
	}
	records := srv.Requests()
	if len(records) != 1 {
		t.Fatalf("server got %d requests, want 1", len(records))
	}
	if xerr.TrackingID == "" || xerr.TrackingID != records[0].TrackingID {
		t.Errorf("tracking ID = %q, want the server's %q", xerr.TrackingID, records[0].TrackingID)
	}
}

func TestTransportOverridesOptsRefresh(t *testing.T) {
	srv, base := newTLSAPI(t)
	cred := &cachingCredential{srv: srv}
	called := false
	ignored := xdrretry.WithTokenRefresh(func(context.Context, *xdrretry.Error) (string, error) {
		called = true
		return "", errors.New("not this one")
	})
	client := &http.Client{Transport: NewTransport(cred, base, []string{DefenderScope}, ignored)}

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/alerts", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.IssueToken(0)) // already expired
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	resp.Body.Close()

	if called {
		t.Errorf("the WithTokenRefresh given in opts was called, want NewRefresh's")
	}
	if n := len(cred.Calls()); n != 1 {
		t.Errorf("credential called %d times, want 1 refresh", n)
	}
}

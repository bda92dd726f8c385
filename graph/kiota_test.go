package graph

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	khttp "github.com/microsoft/kiota-http-go"
	"github.com/xdrretry/xdrretry"
	"github.com/xdrretry/xdrretry/xdrtest"
)

// These tests run Kiota's NetHttpRequestAdapter, with its JSON parser and
// its middleware pipeline, over xdrretry against the fake Defender API.

// fastRetries keeps the waits between retries short in tests.
var fastRetries = xdrretry.WithBackoff(time.Millisecond, time.Millisecond)

func newAPI(t *testing.T) *xdrtest.Server {
	t.Helper()
	srv := xdrtest.NewServer()
	t.Cleanup(srv.Close)
	return srv
}

// headerRecorder is a RoundTripper that records the headers of every
// request that it sends through base.
type headerRecorder struct {
	base http.RoundTripper

	mu      sync.Mutex
	headers []http.Header
}

func (h *headerRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.headers = append(h.headers, req.Header.Clone())
	h.mu.Unlock()
	return h.base.RoundTrip(req)
}

func (h *headerRecorder) Headers() []http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]http.Header(nil), h.headers...)
}

func TestKiotaRetriesServerError(t *testing.T) {
	srv := newAPI(t)
	srv.Script("GET /api/alerts/{id}", xdrtest.ErrorCode(http.StatusInternalServerError, "InternalServerError", "An unexpected error occurred"))
	token := srv.IssueToken(time.Hour)
	tr := xdrretry.New(nil, fastRetries, xdrretry.WithErrorResponses(true))
	adapter := newAdapter(t, NewHTTPClient(tr), func() string { return token })
	want := srv.Alerts()[0]

	got, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/alerts/"+want.ID)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got == nil || deref(got.id) != want.ID || deref(got.title) != want.Title {
		t.Errorf("alert = %+v, want id %q and title %q", got, want.ID, want.Title)
	}
	if n := srv.Count("GET /api/alerts/{id}"); n != 2 {
		t.Errorf("server got %d requests, want 2", n)
	}
}

func TestKiotaRefreshesExpiredToken(t *testing.T) {
	srv := newAPI(t)
	stale := srv.IssueToken(time.Hour)
	srv.ExpireToken(stale)
	var (
		mu        sync.Mutex
		refreshes int
		fresh     string
	)
	refresh := func(context.Context, *xdrretry.Error) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		refreshes++
		fresh = srv.IssueToken(time.Hour)
		return fresh, nil
	}
	tr := xdrretry.New(nil, fastRetries, xdrretry.WithErrorResponses(true), xdrretry.WithTokenRefresh(refresh))
	// The provider keeps returning its cached, stale token, as a caching
	// credential does until the token's expiry time.
	adapter := newAdapter(t, NewHTTPClient(tr), func() string { return stale })
	id := srv.Alerts()[0].ID

	for i := range 2 {
		if _, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/alerts/"+id); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if refreshes != 1 {
		t.Errorf("refresh called %d times, want 1", refreshes)
	}
	want := []string{stale, fresh, fresh}
	records := srv.Requests()
	if len(records) != len(want) {
		t.Fatalf("server got %d requests, want %d", len(records), len(want))
	}
	for i, r := range records {
		if r.Token != want[i] {
			t.Errorf("request %d carried the wrong token (stale = %v)", i, r.Token == stale)
		}
	}
}

func TestKiotaNotFoundFailsFast(t *testing.T) {
	srv := newAPI(t)
	token := srv.IssueToken(time.Hour)
	tr := xdrretry.New(nil, fastRetries, xdrretry.WithErrorResponses(true))
	adapter := newAdapter(t, NewHTTPClient(tr), func() string { return token })

	_, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/alerts/no-such-alert")

	var odata *odataError
	if !errors.As(err, &odata) {
		t.Fatalf("error = %T %v, want the mapped *odataError", err, err)
	}
	if odata.ResponseStatusCode != http.StatusNotFound {
		t.Errorf("status = %d, want 404", odata.ResponseStatusCode)
	}
	if odata.Code() != "NotFound" {
		t.Errorf("code = %q, want NotFound", odata.Code())
	}
	records := srv.Requests()
	if len(records) != 1 {
		t.Fatalf("server got %d requests, want 1", len(records))
	}
	if id := records[0].TrackingID; id == "" || odata.TrackingID() != id {
		t.Errorf("tracking ID = %q, want the server's %q", odata.TrackingID(), id)
	}
}

func TestKiotaNotFoundWithoutMapping(t *testing.T) {
	srv := newAPI(t)
	token := srv.IssueToken(time.Hour)
	tr := xdrretry.New(nil, fastRetries, xdrretry.WithErrorResponses(true))
	adapter := newAdapter(t, NewHTTPClient(tr), func() string { return token })

	adapter.SetBaseUrl(srv.URL)
	info := abs.NewRequestInformationWithMethodAndUrlTemplateAndPathParameters(
		abs.GET, "{+baseurl}/api/alerts/{id}", map[string]string{"id": "no-such-alert"})
	_, err := adapter.Send(context.Background(), info, newAlert, nil)

	var apiErr *abs.ApiError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error = %T %v, want *abs.ApiError", err, err)
	}
	if apiErr.ResponseStatusCode != http.StatusNotFound {
		t.Errorf("status = %d, want 404", apiErr.ResponseStatusCode)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("server got %d requests, want 1", n)
	}
}

func TestKiotaGraphErrorTrackingID(t *testing.T) {
	srv := newAPI(t)
	srv.Script("GET /api/alerts/{id}", xdrtest.GraphError(http.StatusNotFound, "ResourceNotFound", "Resource not found"))
	token := srv.IssueToken(time.Hour)
	tr := xdrretry.New(nil, fastRetries, xdrretry.WithErrorResponses(true))
	adapter := newAdapter(t, NewHTTPClient(tr), func() string { return token })

	_, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/alerts/"+srv.Alerts()[0].ID)

	var odata *odataError
	if !errors.As(err, &odata) {
		t.Fatalf("error = %T %v, want the mapped *odataError", err, err)
	}
	id := srv.Requests()[0].TrackingID
	if id == "" || odata.TrackingID() != id {
		t.Errorf("innerError request-id = %q, want the server's %q", odata.TrackingID(), id)
	}
	if got := odata.GetResponseHeaders().Get("request-id"); len(got) != 1 || got[0] != id {
		t.Errorf("request-id header = %q, want [%q]", got, id)
	}
	if odata.Code() != "ResourceNotFound" {
		t.Errorf("code = %q, want ResourceNotFound", odata.Code())
	}
}

func TestKiotaResponseHandlerGetsTypedError(t *testing.T) {
	srv := newAPI(t)
	token := srv.IssueToken(time.Hour)
	tr := xdrretry.New(nil, fastRetries, xdrretry.WithErrorResponses(true))
	adapter := newAdapter(t, NewHTTPClient(tr), func() string { return token })

	var (
		xerr *xdrretry.Error
		body string
	)
	handler := abs.NewRequestHandlerOption()
	handler.SetResponseHandler(func(response any, _ abs.ErrorMappings) (any, error) {
		resp := response.(*http.Response)
		defer resp.Body.Close()
		xerr = xdrretry.ErrorFromResponse(resp)
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return nil, err
	})
	if _, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/alerts/no-such-alert", handler); err != nil {
		t.Fatalf("Send: %v", err)
	}

	if xerr == nil {
		t.Fatal("ErrorFromResponse in the response handler = nil, want the typed error")
	}
	id := srv.Requests()[0].TrackingID
	if xerr.StatusCode != http.StatusNotFound || xerr.Code != "NotFound" {
		t.Errorf("typed error = %d %s, want 404 NotFound", xerr.StatusCode, xerr.Code)
	}
	if id == "" || xerr.TrackingID != id {
		t.Errorf("tracking ID = %q, want the server's %q", xerr.TrackingID, id)
	}
	if !strings.Contains(body, id) {
		t.Errorf("body = %q, want the whole envelope with the tracking ID", body)
	}
}

func TestKiotaWithoutErrorResponses(t *testing.T) {
	srv := newAPI(t)
	token := srv.IssueToken(time.Hour)
	adapter := newAdapter(t, NewHTTPClient(xdrretry.New(nil, fastRetries)), func() string { return token })

	_, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/alerts/no-such-alert")

	var xerr *xdrretry.Error
	if !errors.As(err, &xerr) {
		t.Fatalf("error = %T %v, want an *xdrretry.Error", err, err)
	}
	if xerr.StatusCode != http.StatusNotFound {
		t.Errorf("status = %d, want 404", xerr.StatusCode)
	}
}

func TestKiotaFollowsRedirect(t *testing.T) {
	srv := newAPI(t)
	want := srv.Alerts()[0]
	srv.Script("GET /api/old/{id}", xdrtest.Raw(http.StatusFound, http.Header{"Location": {"/api/alerts/" + want.ID}}, ""))
	token := srv.IssueToken(time.Hour)
	tr := xdrretry.New(nil, fastRetries, xdrretry.WithErrorResponses(true))
	adapter := newAdapter(t, NewHTTPClient(tr), func() string { return token })

	got, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/old/"+want.ID)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got == nil || deref(got.id) != want.ID {
		t.Errorf("alert = %+v, want id %q", got, want.ID)
	}
	var paths []string
	for _, r := range srv.Requests() {
		paths = append(paths, r.Path)
	}
	if len(paths) != 2 || paths[1] != "/api/alerts/"+want.ID {
		t.Errorf("server got %q, want the old path then the alert", paths)
	}
}

func TestNewHTTPClientKeepsDefaults(t *testing.T) {
	srv := newAPI(t)
	srv.Script("GET /api/alerts/{id}", xdrtest.ErrorCode(http.StatusServiceUnavailable, "ServiceUnavailable", "busy").WithHeader("Retry-After", "0"))
	token := srv.IssueToken(time.Hour)
	rec := &headerRecorder{base: http.DefaultTransport}
	tr := xdrretry.New(rec, xdrretry.WithMaxRetries(0), xdrretry.WithErrorResponses(true))
	adapter := newAdapter(t, NewHTTPClient(tr), func() string { return token })

	_, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/alerts/"+srv.Alerts()[0].ID)

	var odata *odataError
	if !errors.As(err, &odata) || odata.ResponseStatusCode != http.StatusServiceUnavailable {
		t.Fatalf("error = %v, want the 503", err)
	}
	if n := srv.Count("GET /api/alerts/{id}"); n != 1 {
		t.Errorf("server got %d requests, want 1: Kiota's RetryHandler must not retry", n)
	}
	headers := rec.Headers()
	if len(headers) != 1 {
		t.Fatalf("recorded %d requests, want 1", len(headers))
	}
	if ua := headers[0].Get("User-Agent"); !strings.Contains(ua, "kiota-go") {
		t.Errorf("User-Agent = %q, want Kiota's UserAgentHandler to have added kiota-go", ua)
	}
}

func TestNewHTTPClientDropsGivenRetryHandlers(t *testing.T) {
	srv := newAPI(t)
	srv.Script("GET /api/alerts/{id}", xdrtest.ErrorCode(http.StatusServiceUnavailable, "ServiceUnavailable", "busy").WithHeader("Retry-After", "0"))
	token := srv.IssueToken(time.Hour)
	tr := xdrretry.New(nil, xdrretry.WithMaxRetries(0), xdrretry.WithErrorResponses(true))
	client := NewHTTPClient(tr, khttp.NewRetryHandler(), *khttp.NewRetryHandler(), khttp.NewParametersNameDecodingHandler())
	adapter := newAdapter(t, client, func() string { return token })

	_, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/alerts/"+srv.Alerts()[0].ID)
	if err == nil {
		t.Fatal("Send succeeded, want the 503")
	}
	if n := srv.Count("GET /api/alerts/{id}"); n != 1 {
		t.Errorf("server got %d requests, want 1: the given RetryHandlers must be dropped", n)
	}
}

func TestNewHTTPClientOnlyRetryHandler(t *testing.T) {
	tr := xdrretry.New(nil)
	client := NewHTTPClient(tr, khttp.NewRetryHandler())
	if client.Transport != http.RoundTripper(tr) {
		t.Errorf("Transport = %T, want the xdrretry transport itself", client.Transport)
	}
}

func TestNewHTTPClientNilTransport(t *testing.T) {
	srv := newAPI(t)
	token := srv.IssueToken(time.Hour)
	adapter := newAdapter(t, NewHTTPClient(nil), func() string { return token })

	_, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/alerts/no-such-alert")

	var odata *odataError
	if !errors.As(err, &odata) {
		t.Fatalf("error = %T %v, want the mapped *odataError: a nil transport returns error responses", err, err)
	}
	if odata.ResponseStatusCode != http.StatusNotFound {
		t.Errorf("status = %d, want 404", odata.ResponseStatusCode)
	}
}

// caeFault returns a 401 with a continuous access evaluation challenge, as
// Microsoft Graph sends it.
func caeFault() xdrtest.Fault {
	return xdrtest.GraphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Continuous access evaluation resulted in challenge").
		WithHeader("WWW-Authenticate", `Bearer realm="", error="insufficient_claims", `+
			`claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNzAwMDAwMDAwIn19fQ=="`)
}

func TestKiotaCAEWithoutRefreshFunc(t *testing.T) {
	srv := newAPI(t)
	srv.Script("GET /api/alerts/{id}", caeFault())
	token := srv.IssueToken(time.Hour)
	provider := &tokenProvider{token: func() string { return token }}
	tr := xdrretry.New(nil, fastRetries, xdrretry.WithErrorResponses(true))
	adapter := newAdapterWithProvider(t, NewHTTPClient(tr), provider)

	if _, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/alerts/"+srv.Alerts()[0].ID); err != nil {
		t.Fatalf("Send: %v", err)
	}

	if claims := provider.Claims(); len(claims) != 1 || claims[0] == "" {
		t.Errorf("provider got claims %q, want one call with the challenge's claims", claims)
	}
	if n := srv.Count("GET /api/alerts/{id}"); n != 2 {
		t.Errorf("server got %d requests, want 2: Kiota resends once with the claims", n)
	}
}

func TestKiotaCAEWithRefreshFunc(t *testing.T) {
	srv := newAPI(t)
	srv.Script("GET /api/alerts/{id}", caeFault())
	token := srv.IssueToken(time.Hour)
	provider := &tokenProvider{token: func() string { return token }}
	refresh := func(context.Context, *xdrretry.Error) (string, error) { return srv.IssueToken(time.Hour), nil }
	tr := xdrretry.New(nil, fastRetries, xdrretry.WithErrorResponses(true), xdrretry.WithTokenRefresh(refresh))
	adapter := newAdapterWithProvider(t, NewHTTPClient(tr), provider)

	if _, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/alerts/"+srv.Alerts()[0].ID); err != nil {
		t.Fatalf("Send: %v", err)
	}

	if claims := provider.Claims(); len(claims) != 0 {
		t.Errorf("provider got claims %q, want none: xdrretry handled the challenge", claims)
	}
	if n := srv.Count("GET /api/alerts/{id}"); n != 2 {
		t.Errorf("server got %d requests, want 2", n)
	}
}

func TestKiotaCAERefreshFuncFails(t *testing.T) {
	srv := newAPI(t)
	srv.Script("GET /api/alerts/{id}", caeFault())
	token := srv.IssueToken(time.Hour)
	provider := &tokenProvider{token: func() string { return token }}
	refresh := func(context.Context, *xdrretry.Error) (string, error) { return "", errors.New("token service down") }
	tr := xdrretry.New(nil, fastRetries, xdrretry.WithErrorResponses(true), xdrretry.WithTokenRefresh(refresh))
	adapter := newAdapterWithProvider(t, NewHTTPClient(tr), provider)

	_, err := getAlert(context.Background(), t, adapter, srv.URL+"/api/alerts/"+srv.Alerts()[0].ID)

	if !errors.Is(err, xdrretry.ErrRefreshFailed) {
		t.Errorf("error = %v, want ErrRefreshFailed: a failed refresh has no response for Kiota", err)
	}
	if claims := provider.Claims(); len(claims) != 0 {
		t.Errorf("provider got claims %q, want none", claims)
	}
	if n := srv.Count("GET /api/alerts/{id}"); n != 1 {
		t.Errorf("server got %d requests, want 1", n)
	}
}

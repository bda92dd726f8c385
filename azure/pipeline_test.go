package azure

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/xdrretry/xdrretry"
)

// These tests run azcore's pipeline over the transport, configured as the
// package documentation describes: azcore's retries off and xdrretry returning
// failed responses.

func newPipeline(tr http.RoundTripper, perRetry ...policy.Policy) runtime.Pipeline {
	return runtime.NewPipeline("xdrretrytest", "v0.0.1", runtime.PipelineOptions{PerRetry: perRetry}, &policy.ClientOptions{
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Transport: &http.Client{Transport: tr},
	})
}

// send sends one GET through pl and returns the response with its body
// read, or the pipeline's error.
func send(t *testing.T, pl runtime.Pipeline, url string) (*http.Response, string, error) {
	t.Helper()
	req, err := runtime.NewRequest(context.Background(), http.MethodGet, url)
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	resp, err := pl.Do(req)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, string(body), nil
}

func TestPipelineHealsServerError(t *testing.T) {
	api, base := newTLSAPI(t)
	api.Script("GET /api/alerts", xdrtestServerError())
	cred := &cachingCredential{srv: api}
	pl := newPipeline(NewTransport(cred, base, []string{DefenderScope}, fastRetries, xdrretry.WithErrorResponses(true)))

	resp, body, err := send(t, pl, api.URL+"/api/alerts")
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	if !strings.Contains(body, `"value"`) {
		t.Errorf("body = %.100q, want the alert list", body)
	}
	if n := api.Count("GET /api/alerts"); n != 2 {
		t.Errorf("API got %d requests, want 2", n)
	}
}

func TestPipelineNotFoundFailsFast(t *testing.T) {
	api, base := newTLSAPI(t)
	cred := &cachingCredential{srv: api}
	pl := newPipeline(NewTransport(cred, base, []string{DefenderScope}, fastRetries, xdrretry.WithErrorResponses(true)))

	req, err := runtime.NewRequest(context.Background(), http.MethodGet, api.URL+"/api/alerts/no-such-alert")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := pl.Do(req)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if runtime.HasStatusCode(resp, http.StatusOK) {
		t.Fatalf("status = 200, want 404")
	}
	if xerr := xdrretry.ErrorFromResponse(resp); xerr != nil {
		t.Errorf("ErrorFromResponse after the pipeline = %v, want nil: azcore replaced the body", xerr)
	}

	err = runtime.NewResponseError(resp)
	var respErr *azcore.ResponseError
	if !errors.As(err, &respErr) {
		t.Fatalf("NewResponseError = %T, want *azcore.ResponseError", err)
	}
	if respErr.StatusCode != http.StatusNotFound {
		t.Errorf("ResponseError.StatusCode = %d, want 404", respErr.StatusCode)
	}
	if respErr.ErrorCode != "NotFound" {
		t.Errorf("ResponseError.ErrorCode = %q, want NotFound", respErr.ErrorCode)
	}

	records := api.Requests()
	if len(records) != 1 {
		t.Fatalf("API got %d requests, want 1", len(records))
	}
	body, err := runtime.Payload(respErr.RawResponse)
	if err != nil {
		t.Fatalf("Payload: %v", err)
	}
	if id := records[0].TrackingID; id == "" || !strings.Contains(string(body), id) {
		t.Errorf("RawResponse body = %q, want the tracking ID %q", body, id)
	}
}

func TestPipelineCAEChallengeClaims(t *testing.T) {
	api, base := newTLSAPI(t)
	api.Script("GET /api/alerts", caeFault())
	cred := &cachingCredential{srv: api}
	pl := newPipeline(NewTransport(cred, base, []string{GraphScope}, fastRetries, xdrretry.WithErrorResponses(true)))

	resp, _, err := send(t, pl, api.URL+"/api/alerts")
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	calls := cred.Calls()
	if len(calls) != 2 {
		t.Fatalf("credential called %d times, want 2", len(calls))
	}
	if calls[1].Claims != caeClaims {
		t.Errorf("refresh claims = %q, want the challenge's %q", calls[1].Claims, caeClaims)
	}
	if n := api.Count("GET /api/alerts"); n != 2 {
		t.Errorf("API got %d requests, want 2", n)
	}
}

func TestPipelineCAEChallengeAzidentity(t *testing.T) {
	api, base := newTLSAPI(t)
	api.Script("GET /api/alerts", caeFault())
	entra := newFakeEntra(t, api)
	cred := entra.newCredential(t)
	pl := newPipeline(NewTransport(cred, base, []string{GraphScope}, fastRetries, xdrretry.WithErrorResponses(true)))

	resp, _, err := send(t, pl, api.URL+"/api/alerts")
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	forms := entra.TokenRequests()
	if len(forms) != 2 {
		t.Fatalf("token endpoint got %d requests, want 2", len(forms))
	}
	nbf, _ := accessTokenClaim(requestedClaims(t, forms[1]), "nbf").(map[string]any)
	if nbf["value"] != "1700000000" {
		t.Errorf("refresh token request nbf = %v, want the challenge's value", nbf)
	}
}

func TestPipelineBearerPolicyStaleToken(t *testing.T) {
	api, base := newTLSAPI(t)
	cred := &cachingCredential{srv: api}
	bearer := runtime.NewBearerTokenPolicy(cred, []string{DefenderScope}, nil)
	pl := newPipeline(NewTransport(cred, base, []string{DefenderScope}, fastRetries, xdrretry.WithErrorResponses(true)), bearer)

	if _, _, err := send(t, pl, api.URL+"/api/machines"); err != nil {
		t.Fatalf("first Do: %v", err)
	}
	stale := cred.Current()
	api.ExpireToken(stale)

	// The policy keeps sending its cached token. The API rejects it once,
	// and the transport then refreshes it and replaces it on every later
	// request.
	for i := range 2 {
		resp, _, err := send(t, pl, api.URL+"/api/machines")
		if err != nil {
			t.Fatalf("Do %d after the token expired: %v", i, err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Do %d: status = %d, want 200", i, resp.StatusCode)
		}
	}

	tokens := tokensSeen(api)
	fresh := cred.Current()
	want := []string{stale, stale, fresh, fresh}
	if len(tokens) != len(want) {
		t.Fatalf("API got %d requests, want %d", len(tokens), len(want))
	}
	for i := range want {
		if tokens[i] != want[i] {
			t.Errorf("request %d carried the %s token, want the %s one", i, tokenName(tokens[i], stale), tokenName(want[i], stale))
		}
	}
}

func tokenName(token, stale string) string {
	if token == stale {
		return "stale"
	}
	return "fresh"
}

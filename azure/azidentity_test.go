package azure

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/xdrretry/xdrretry"
)

// These tests run azidentity's ClientSecretCredential, and MSAL for Go
// under it, against a fake token endpoint on loopback.

func TestClientSecretCredentialCachesToken(t *testing.T) {
	api, _ := newTLSAPI(t)
	entra := newFakeEntra(t, api)
	cred := entra.newCredential(t)
	opts := policy.TokenRequestOptions{Scopes: []string{DefenderScope}, EnableCAE: true}

	first, err := cred.GetToken(context.Background(), opts)
	if err != nil {
		t.Fatalf("first GetToken: %v", err)
	}
	second, err := cred.GetToken(context.Background(), opts)
	if err != nil {
		t.Fatalf("second GetToken: %v", err)
	}

	if second.Token != first.Token {
		t.Errorf("second GetToken returned a new token, want the cached one")
	}
	if n := len(entra.TokenRequests()); n != 1 {
		t.Errorf("token endpoint got %d requests, want 1", n)
	}
}

func TestClientSecretCredentialPlain401(t *testing.T) {
	api, base := newTLSAPI(t)
	entra := newFakeEntra(t, api)
	cred := entra.newCredential(t)
	client := &http.Client{Transport: NewTransport(cred, base, []string{DefenderScope}, fastRetries)}

	get := func(step string) {
		t.Helper()
		resp, err := client.Get(api.URL + "/api/machines")
		if err != nil {
			t.Fatalf("%s: Get: %v", step, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status = %d, want 200", step, resp.StatusCode)
		}
	}

	get("first request")
	first := tokensSeen(api)[0]
	api.ExpireToken(first)
	get("request after the token expired")
	get("request after the refresh")

	tokens := tokensSeen(api)
	if len(tokens) != 4 {
		t.Fatalf("API got %d requests, want 4 (token, 401, retry, next)", len(tokens))
	}
	if tokens[1] != first {
		t.Errorf("second request carried a new token, want the cached one")
	}
	if tokens[2] == first {
		t.Errorf("retry after the 401 carried the rejected token")
	}
	if tokens[3] != tokens[2] {
		t.Errorf("next request carried %q, want the refreshed token from the cache", tokens[3])
	}

	forms := entra.TokenRequests()
	if len(forms) != 2 {
		t.Fatalf("token endpoint got %d requests, want 2", len(forms))
	}
	claims := requestedClaims(t, forms[1])
	if accessTokenClaim(claims, "nbf") == nil {
		t.Errorf("refresh token request claims = %v, want an nbf claim", claims)
	}
	if accessTokenClaim(claims, "xms_cc") == nil {
		t.Errorf("refresh token request claims = %v, want the CAE capability xms_cc", claims)
	}
	if scope := forms[1].Get("scope"); scope == "" {
		t.Errorf("refresh token request has no scope")
	}
}

func TestClientSecretCredentialCAEChallenge(t *testing.T) {
	api, base := newTLSAPI(t)
	entra := newFakeEntra(t, api)
	cred := entra.newCredential(t)
	client := &http.Client{Transport: NewTransport(cred, base, []string{GraphScope}, fastRetries)}
	api.Script("GET /api/alerts", caeFault())

	resp, err := client.Get(api.URL + "/api/alerts")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	resp.Body.Close()

	if n := api.Count("GET /api/alerts"); n != 2 {
		t.Errorf("API got %d requests, want 2", n)
	}
	forms := entra.TokenRequests()
	if len(forms) != 2 {
		t.Fatalf("token endpoint got %d requests, want 2", len(forms))
	}
	nbf, _ := accessTokenClaim(requestedClaims(t, forms[1]), "nbf").(map[string]any)
	if nbf["value"] != "1700000000" {
		t.Errorf("refresh token request nbf = %v, want the challenge's value 1700000000", nbf)
	}
}

func TestClientSecretCredentialRevokedSecret(t *testing.T) {
	api, base := newTLSAPI(t)
	entra := newFakeEntra(t, api)
	cred := entra.newCredential(t)
	client := &http.Client{Transport: NewTransport(cred, base, []string{DefenderScope}, fastRetries)}

	// The cached token is rejected, and the forced refresh reaches the
	// token endpoint, whose error response explains the failure.
	resp, err := client.Get(api.URL + "/api/machines")
	if err != nil {
		t.Fatalf("first Get: %v", err)
	}
	resp.Body.Close()
	api.ExpireToken(tokensSeen(api)[0])
	entra.RevokeSecret()

	_, err = client.Get(api.URL + "/api/machines")
	if !errors.Is(err, xdrretry.ErrRefreshFailed) {
		t.Fatalf("error = %v, want ErrRefreshFailed", err)
	}
	if !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Errorf("error = %q, want the token endpoint's reason", err)
	}
}

func TestClientSecretCredentialConcurrent401s(t *testing.T) {
	api, base := newTLSAPI(t)
	entra := newFakeEntra(t, api)
	cred := entra.newCredential(t)
	client := &http.Client{Transport: NewTransport(cred, base, []string{DefenderScope}, fastRetries)}

	resp, err := client.Get(api.URL + "/api/alerts")
	if err != nil {
		t.Fatalf("first Get: %v", err)
	}
	resp.Body.Close()
	api.ExpireToken(tokensSeen(api)[0])

	const workers = 8
	errs := make(chan error, workers)
	for range workers {
		go func() {
			resp, err := client.Get(api.URL + "/api/alerts")
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Errorf("Get after the token expired: %v", err)
		}
	}

	if n := len(entra.TokenRequests()); n != 2 {
		t.Errorf("token endpoint got %d requests, want 2: concurrent 401s share one refresh", n)
	}
}

package azure

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/xdrretry/xdrretry/xdrtest"
)

// The app registration that the fake token endpoint accepts.
const (
	testClientID     = "5f0c8a52-6d1e-4a8b-9c3f-2e7b1d4a6c90"
	testClientSecret = "test-client-secret"
)

// fakeEntra is a loopback stand-in for the Microsoft Entra ID endpoints
// that MSAL for Go calls for the client credentials flow when instance
// discovery is off: the tenant's OpenID configuration and its v2.0 token
// endpoint. It issues tokens of an xdrtest server, so that the API accepts
// them, and records the form of every token request.
type fakeEntra struct {
	srv *httptest.Server
	api *xdrtest.Server

	mu            sync.Mutex
	tokenRequests []url.Values
	secretRevoked bool
}

func newFakeEntra(t *testing.T, api *xdrtest.Server) *fakeEntra {
	t.Helper()
	e := &fakeEntra{api: api}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", e.serveOpenIDConfiguration)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", e.serveToken)
	e.srv = httptest.NewTLSServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *fakeEntra) serveOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	tenantURL := e.srv.URL + "/" + r.PathValue("tenant")
	writeJSON(w, http.StatusOK, map[string]string{
		"token_endpoint":         tenantURL + "/oauth2/v2.0/token",
		"authorization_endpoint": tenantURL + "/oauth2/v2.0/authorize",
		"issuer":                 tenantURL + "/v2.0",
	})
}

func (e *fakeEntra) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	e.mu.Lock()
	e.tokenRequests = append(e.tokenRequests, r.PostForm)
	revoked := e.secretRevoked
	e.mu.Unlock()

	if revoked ||
		r.PostForm.Get("grant_type") != "client_credentials" ||
		r.PostForm.Get("client_id") != testClientID ||
		r.PostForm.Get("client_secret") != testClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{
			"error":             "invalid_client",
			"error_description": "AADSTS7000215: Invalid client secret provided.",
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     3600,
		"ext_expires_in": 3600,
		"access_token":   e.api.IssueToken(time.Hour),
	})
}

// RevokeSecret makes the token endpoint reject the client secret from now
// on.
func (e *fakeEntra) RevokeSecret() {
	e.mu.Lock()
	e.secretRevoked = true
	e.mu.Unlock()
}

// TokenRequests returns a copy of the forms of the token requests so far.
func (e *fakeEntra) TokenRequests() []url.Values {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]url.Values(nil), e.tokenRequests...)
}

// newCredential returns a real azidentity ClientSecretCredential whose
// authority is the fake endpoint. It sends requests only to loopback
// hosts, and instance discovery and regional authorities are off, so MSAL
// has no reason to call any other host.
func (e *fakeEntra) newCredential(t *testing.T) *azidentity.ClientSecretCredential {
	t.Helper()
	t.Setenv("AZURE_REGIONAL_AUTHORITY_NAME", "")
	t.Setenv("MSAL_FORCE_REGION", "")
	cred, err := azidentity.NewClientSecretCredential(xdrtest.TenantID, testClientID, testClientSecret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.srv.URL + "/"},
				Transport: &http.Client{Transport: loopbackOnly{e.srv.Client().Transport}},
				Retry:     policy.RetryOptions{MaxRetries: -1},
			},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatalf("NewClientSecretCredential: %v", err)
	}
	return cred
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// requestedClaims decodes the claims parameter of a token request.
func requestedClaims(t *testing.T, form url.Values) map[string]any {
	t.Helper()
	raw := form.Get("claims")
	if raw == "" {
		return nil
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(raw), &claims); err != nil {
		t.Fatalf("token request claims %q are not JSON: %v", raw, err)
	}
	return claims
}

// accessTokenClaim returns claims["access_token"][name], or nil.
func accessTokenClaim(claims map[string]any, name string) any {
	at, _ := claims["access_token"].(map[string]any)
	return at[name]
}

package azure

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/xdrretry/xdrretry"
)

// Transport is an [http.RoundTripper] that authorizes requests with tokens
// from an [azcore.TokenCredential] and sends them through an
// [xdrretry.Transport] that refreshes the token on a 401.
//
// A request without an Authorization header gets "Bearer <token>" with the
// credential's current token. The credentials of azidentity cache their
// tokens, so this costs a request to Microsoft Entra ID only when the
// cached token nears expiry. A request that has an Authorization header,
// for example from azcore's BearerTokenPolicy, is sent as it is.
//
// A Transport is safe for concurrent use.
type Transport struct {
	cred   azcore.TokenCredential
	scopes []string
	next   *xdrretry.Transport
}

// NewTransport returns a Transport that gets tokens for scopes from cred
// and sends requests through xdrretry.New(base, opts...), with
// [xdrretry.WithTokenRefresh] of [NewRefresh](cred, scopes...) added after
// opts. A WithTokenRefresh in opts is therefore replaced. A nil base means
// [http.DefaultTransport].
func NewTransport(cred azcore.TokenCredential, base http.RoundTripper, scopes []string, opts ...xdrretry.Option) *Transport {
	scopes = slices.Clone(scopes)
	opts = append(slices.Clone(opts), xdrretry.WithTokenRefresh(NewRefresh(cred, scopes...)))
	return &Transport{cred: cred, scopes: scopes, next: xdrretry.New(base, opts...)}
}

// RoundTrip sets the bearer token on a copy of req when req has no
// Authorization header, and sends it as described on [xdrretry.Transport].
// It sets a token only on an https request, and fails a plain http request
// that has no Authorization header. The caller's request is not modified.
//
// When the credential fails, RoundTrip returns its error, wrapped, and no
// request is sent.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" {
		return t.next.RoundTrip(req)
	}
	if req.URL == nil || !strings.EqualFold(req.URL.Scheme, "https") {
		closeBody(req)
		return nil, fmt.Errorf("azure: bearer token not sent to %s: the request URL must use https", redactedURL(req))
	}
	tok, err := t.cred.GetToken(req.Context(), policy.TokenRequestOptions{Scopes: t.scopes, EnableCAE: true})
	if err != nil {
		closeBody(req)
		method := req.Method
		if method == "" {
			method = http.MethodGet
		}
		return nil, fmt.Errorf("azure: getting a token for %s %s: %w", method, redactedURL(req), err)
	}

	out := req.Clone(req.Context())
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	out.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := t.next.RoundTrip(out)
	if resp != nil && resp.Request == out {
		resp.Request = req
	}
	return resp, err
}

// CloseIdleConnections closes the idle connections of the base transport,
// if it has that method.
func (t *Transport) CloseIdleConnections() {
	t.next.CloseIdleConnections()
}

// closeBody closes the request body, as an http.RoundTripper must on
// every return.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// redactedURL returns the request URL without its query, fragment and user
// information, for error messages.
func redactedURL(req *http.Request) string {
	if req.URL == nil {
		return "<nil URL>"
	}
	u := *req.URL
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}

package azure

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/xdrretry/xdrretry"
	"github.com/xdrretry/xdrretry/xdrtest"
)

// fastRetries keeps the waits between retries short in tests.
var fastRetries = xdrretry.WithBackoff(time.Millisecond, time.Millisecond)

// newTLSAPI starts a fake Defender API over https and returns it with a
// transport that trusts its certificate.
func newTLSAPI(t *testing.T) (*xdrtest.Server, http.RoundTripper) {
	t.Helper()
	srv := xdrtest.NewUnstartedServer()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, srv.Client().Transport
}

// cachingCredential is an azcore.TokenCredential that issues tokens of an
// xdrtest server and caches them the way azidentity does: a request
// without claims gets the cached token, and a request with claims gets a
// new one. It records the options of every call.
type cachingCredential struct {
	srv *xdrtest.Server
	err error // returned by every call when set

	mu      sync.Mutex
	current string
	calls   []policy.TokenRequestOptions
}

func (c *cachingCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, opts)
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	if c.current == "" || opts.Claims != "" {
		c.current = c.srv.IssueToken(time.Hour)
	}
	return azcore.AccessToken{Token: c.current, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// Calls returns a copy of the options of every call so far.
func (c *cachingCredential) Calls() []policy.TokenRequestOptions {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]policy.TokenRequestOptions(nil), c.calls...)
}

// Current returns the cached token.
func (c *cachingCredential) Current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// loopbackOnly is a RoundTripper that sends requests to loopback addresses
// only, so that a library under test cannot reach a host on the network.
type loopbackOnly struct {
	base http.RoundTripper
}

func (l loopbackOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Hostname()
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("test transport: request to non-loopback host %q rejected", host)
	}
	return l.base.RoundTrip(req)
}

// closeRecorder is a request body that records whether it was closed.
type closeRecorder struct {
	*strings.Reader
	closed bool
}

func (c *closeRecorder) Close() error {
	c.closed = true
	return nil
}

// tokensSeen returns the bearer tokens of the requests that srv recorded,
// in order.
func tokensSeen(srv *xdrtest.Server) []string {
	var tokens []string
	for _, r := range srv.Requests() {
		tokens = append(tokens, r.Token)
	}
	return tokens
}

// caeChallenge is a continuous access evaluation challenge as Microsoft
// Graph sends it, with claims {"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}
// in standard base64.
const (
	caeClaims    = `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	caeChallenge = `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", ` +
		`error="insufficient_claims", ` +
		`claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNzAwMDAwMDAwIn19fQ=="`
)

// caeFault returns a 401 with a CAE challenge.
func caeFault() xdrtest.Fault {
	return xdrtest.GraphError(http.StatusUnauthorized, "InvalidAuthenticationToken",
		"Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenCreatedWithOutdatedPolicies").
		WithHeader("WWW-Authenticate", caeChallenge)
}

var errCredentialDown = errors.New("credential unavailable")

// xdrtestServerError returns a 500 with a Defender error envelope.
func xdrtestServerError() xdrtest.Fault {
	return xdrtest.ErrorCode(http.StatusInternalServerError, "InternalServerError", "An unexpected error occurred")
}

package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/xdrretry/xdrretry"
)

// Scopes of the APIs that xdrretry serves. Each is the resource's App ID
// URI with "/.default", which requests every permission granted to the app.
const (
	// DefenderScope is the scope of the Defender for Endpoint API.
	DefenderScope = "https://api.securitycenter.microsoft.com/.default"

	// XDRScope is the scope of the Defender XDR API (incidents and
	// advanced hunting at api.security.microsoft.com).
	XDRScope = "https://api.security.microsoft.com/.default"

	// GraphScope is the scope of Microsoft Graph.
	GraphScope = "https://graph.microsoft.com/.default"
)

// ForcedRefreshInterval is the minimum time between two token requests
// that a refresh function from [NewRefresh] forces after a 401 without a
// claims challenge. It keeps a service that rejects every token from
// driving a token request per API request, which Microsoft Entra ID may
// throttle.
const ForcedRefreshInterval = time.Minute

// errClaimsNotJSON is the cause when a 401's claims challenge cannot be
// passed to a credential.
var errClaimsNotJSON = errors.New("the claims of the 401's insufficient_claims challenge are not JSON")

// NewRefresh returns an [xdrretry.RefreshFunc] that gets a new token from
// cred for scopes. It requests the token with continuous access evaluation
// (CAE) enabled, as azcore's BearerTokenPolicy does, so that azidentity
// declares the CAE capability (xms_cc "cp1") in its token requests.
//
// After a 401 whose WWW-Authenticate challenge has error="insufficient_claims"
// and claims, the claims go to cred. The credentials of azidentity then
// skip their token cache and request a token that satisfies the claims
// from Microsoft Entra ID.
//
// After any other 401, the token in the credential's cache is usually the
// one that was rejected: azidentity (through MSAL for Go v1.10.1) returns its
// cached token until five minutes before the token expires, or until the
// earlier refresh time that Entra ID may set. To get a new token anyway,
// the function sends cred a claims request of its own,
// {"access_token":{"nbf":{"essential":true,"value":"<now>"}}}, the form of
// the CAE challenge that requests a token issued after a given time. It
// does so at most once per [ForcedRefreshInterval]. Within the interval it
// calls cred without claims and so may get back the rejected token, and
// xdrretry then fails the request with [xdrretry.ErrRefreshFailed].
//
// How a credential handles claims depends on its kind. In azidentity
// v1.15.0, the credentials of an app (client secret, certificate, client
// assertion, workload identity) and ManagedIdentityCredential request a
// new token. The user credentials (interactive browser, device code)
// redeem their refresh token with the claims, and prompt the user again
// when that fails.
// AzureCLICredential, AzureDeveloperCLICredential and
// AzurePowerShellCredential return an error that tells the user to log in
// again with the claims.
//
// NOTE: Entra ID's response to a claims request that no service sent was
// checked only against a local fake token endpoint, not against Entra ID.
func NewRefresh(cred azcore.TokenCredential, scopes ...string) xdrretry.RefreshFunc {
	r := &refresher{cred: cred, scopes: append([]string(nil), scopes...), now: time.Now}
	return r.refresh
}

// refresher is the state of one refresh function from NewRefresh.
type refresher struct {
	cred   azcore.TokenCredential
	scopes []string
	now    func() time.Time

	mu         sync.Mutex
	lastForced time.Time // zero until the first forced refresh
}

func (r *refresher) refresh(ctx context.Context, rejected *xdrretry.Error) (string, error) {
	opts := policy.TokenRequestOptions{Scopes: r.scopes, EnableCAE: true}
	claims, isChallenge := challengeClaims(rejected)
	switch {
	case isChallenge && !json.Valid([]byte(claims)):
		return "", errClaimsNotJSON
	case isChallenge:
		opts.Claims = claims
	case r.startForced():
		opts.Claims = forcedRefreshClaims(r.now())
	}

	tok, err := r.cred.GetToken(ctx, opts)
	if err != nil {
		return "", fmt.Errorf("getting a new token for %s: %w", strings.Join(r.scopes, " "), err)
	}
	return tok.Token, nil
}

// startForced reports whether a forced refresh may run now, and if so
// records it.
func (r *refresher) startForced() bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.lastForced.IsZero() && now.Sub(r.lastForced) < ForcedRefreshInterval {
		return false
	}
	r.lastForced = now
	return true
}

// challengeClaims returns the decoded claims of a CAE challenge, and
// whether rejected carries one: a challenge with error="insufficient_claims"
// and a non-empty claims parameter, as azcore's BearerTokenPolicy reads it.
func challengeClaims(rejected *xdrretry.Error) (string, bool) {
	if rejected == nil || rejected.Challenge == nil {
		return "", false
	}
	c := rejected.Challenge
	if c.Param("error") != "insufficient_claims" || c.Claims == "" {
		return "", false
	}
	return c.Claims, true
}

// forcedRefreshClaims returns a claims request for an access token issued
// no earlier than now.
func forcedRefreshClaims(now time.Time) string {
	return `{"access_token":{"nbf":{"essential":true,"value":"` + strconv.FormatInt(now.Unix(), 10) + `"}}}`
}

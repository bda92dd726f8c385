package bench

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/hashicorp/go-retryablehttp"
	nethttplibrary "github.com/microsoft/kiota-http-go"

	"github.com/xdrretry/xdrretry"
	"github.com/xdrretry/xdrretry/xdrtest"
)

// Retry settings shared by the contenders. The waits are small so that a
// benchmark that retries measures the work of each client more than its
// sleep.
//
// The first wait is 0.5 ms, jittered to 0.25-0.75 ms where the client
// adds jitter. The Go runtime on Linux sleeps in whole milliseconds
// (runtime/netpoll_epoll.go), so every one of these waits takes one tick,
// about 1.1 ms on the machine in BENCHMARKS.md. A first wait of 1 ms
// jittered by ±50% would take one tick or two at random, and the
// benchmark would compare the jitter instead of the clients.
const (
	maxRetries     = 4
	initialBackoff = 500 * time.Microsecond
	maxBackoff     = 16 * time.Millisecond

	// kiotaDelaySeconds is the smallest backoff that kiota-http-go v1.5.4
	// accepts: RetryHandlerOptions.DelaySeconds counts whole seconds, and a
	// value below 1 selects its default of 3. Kiota adds up to 1 s of
	// random jitter to each backoff.
	kiotaDelaySeconds = 1

	// failsafeJitterFactor matches xdrretry's fixed jitter of ±50%.
	failsafeJitterFactor = 0.5
)

// maxIdleConns is the idle pool size of every base transport. It is larger
// than the most concurrent callers of any test, so that a count of new
// connections shows the connections that a client discards, not the
// pool's limit.
const maxIdleConns = 256

// refreshFunc returns a new bearer token.
type refreshFunc func(ctx context.Context) (string, error)

// contender is one retrying HTTP client under comparison.
type contender struct {
	name string

	// retries500 is true when the contender retries a 500 response.
	retries500 bool

	// refreshes is true when the contender fetches a new token on a 401 by
	// itself, through a hook that the caller sets.
	refreshes bool

	// newClient returns a client that sends every attempt through base.
	// refresh is the token source for a 401, or nil.
	newClient func(base *http.Transport, refresh refreshFunc) *http.Client
}

// contenders lists the clients in the order of the result tables.
var contenders = []contender{
	{name: "bare", newClient: newBareClient},
	{name: "xdrretry", retries500: true, refreshes: true, newClient: newXDRRetryClient},
	{name: "retryablehttp", retries500: true, newClient: newRetryableHTTPClient},
	{name: "kiota", newClient: newKiotaClient},
	{name: "failsafe", retries500: true, newClient: newFailsafeClient},
}

// newBaseTransport returns a clone of http.DefaultTransport with no proxy
// and an idle pool of maxIdleConns connections per host.
func newBaseTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConns = maxIdleConns
	t.MaxIdleConnsPerHost = maxIdleConns
	return t
}

// newBareClient returns a client with no retries.
func newBareClient(base *http.Transport, _ refreshFunc) *http.Client {
	return &http.Client{Transport: base}
}

// newXDRRetryClient returns a client over xdrretry.Transport with the
// shared retry settings and its defaults otherwise: the throttle gate and
// a retry budget of 500 tokens at 5 a retry.
func newXDRRetryClient(base *http.Transport, refresh refreshFunc) *http.Client {
	opts := []xdrretry.Option{
		xdrretry.WithMaxRetries(maxRetries),
		xdrretry.WithBackoff(initialBackoff, maxBackoff),
	}
	if refresh != nil {
		opts = append(opts, xdrretry.WithTokenRefresh(
			func(ctx context.Context, _ *xdrretry.Error) (string, error) { return refresh(ctx) },
		))
	}
	return &http.Client{Transport: xdrretry.New(base, opts...)}
}

// newRetryableHTTPClient returns go-retryablehttp's StandardClient with
// the default retry policy (429, 5xx except 501, network errors) and the
// default backoff (doubling from RetryWaitMin to RetryWaitMax, with
// Retry-After honoured on 429 and 503). The logger is off, because the
// default one writes every retry to stderr.
func newRetryableHTTPClient(base *http.Transport, _ refreshFunc) *http.Client {
	c := retryablehttp.NewClient()
	c.HTTPClient = &http.Client{Transport: base}
	c.Logger = nil
	c.RetryMax = maxRetries
	c.RetryWaitMin = initialBackoff
	c.RetryWaitMax = maxBackoff
	return c.StandardClient()
}

// newKiotaClient returns a client over a kiota-http-go middleware pipeline
// that contains only the RetryHandler, which retries 429, 503 and 504 and
// honours Retry-After. The Graph SDK's pipeline also has kiota's redirect,
// compression, parameter name decoding, user agent and headers inspection
// handlers, and Graph's telemetry and URL replace handlers. This
// comparison leaves them out.
func newKiotaClient(base *http.Transport, _ refreshFunc) *http.Client {
	handler := nethttplibrary.NewRetryHandlerWithOptions(nethttplibrary.RetryHandlerOptions{
		MaxRetries:   maxRetries,
		DelaySeconds: kiotaDelaySeconds,
		// A nil ShouldRetry panics in v1.5.4; NewRetryHandler sets this one.
		ShouldRetry: func(time.Duration, int, *http.Request, *http.Response) bool { return true },
	})
	return &http.Client{Transport: nethttplibrary.NewCustomTransportWithParentTransport(base, handler)}
}

// newFailsafeClient returns a client over failsafehttp's round tripper
// with the retry policy that failsafehttp.NewRetryPolicyBuilder configures
// for HTTP (429, 5xx except 501, network errors, Retry-After on 429 and
// 503), plus exponential backoff with jitter.
func newFailsafeClient(base *http.Transport, _ refreshFunc) *http.Client {
	policy := failsafehttp.NewRetryPolicyBuilder().
		WithMaxRetries(maxRetries).
		WithBackoff(initialBackoff, maxBackoff).
		WithJitterFactor(failsafeJitterFactor).
		Build()
	return &http.Client{Transport: failsafehttp.NewRoundTripper(base, policy)}
}

// fixture is one fake Defender API with a valid token, and a base
// transport for one contender.
type fixture struct {
	srv   *xdrtest.Server
	base  *http.Transport
	token string

	alertURL   string // an alert that exists
	missingURL string // an alert that does not exist
}

// newFixture starts a fake API that tb closes when it ends.
func newFixture(tb testing.TB) *fixture {
	srv := xdrtest.NewServer()
	base := newBaseTransport()
	tb.Cleanup(func() {
		base.CloseIdleConnections()
		srv.Close()
	})
	return &fixture{
		srv:        srv,
		base:       base,
		token:      srv.IssueToken(time.Hour),
		alertURL:   srv.URL + "/api/alerts/" + srv.Alerts()[0].ID,
		missingURL: srv.URL + "/api/alerts/missing",
	}
}

// get sends GET url with token through client, reads and closes the body
// of any response, and returns the status with which the request ended:
// the response's, or the StatusCode of an *xdrretry.Error. It returns 0
// and the error when the request ended without a status.
//
// When failsafe-go runs out of retries it returns a
// retrypolicy.ExceededError that holds the last response. get closes that
// response's body too, as a careful caller would, so that the connection
// counts show only what the client itself leaves open.
func get(ctx context.Context, client *http.Client, url, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		var xerr *xdrretry.Error
		if errors.As(err, &xerr) && xerr.StatusCode != 0 {
			return xerr.StatusCode, nil
		}
		var exceeded retrypolicy.ExceededError
		if errors.As(err, &exceeded) {
			if last, ok := exceeded.LastResult.(*http.Response); ok && last != nil {
				drain(last)
				return last.StatusCode, nil
			}
		}
		return 0, err
	}
	drain(resp)
	return resp.StatusCode, nil
}

// drain reads a response body to its end and closes it, so that the
// connection returns to the pool.
func drain(resp *http.Response) {
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

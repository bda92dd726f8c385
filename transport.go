package xdrretry

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Transport is an [http.RoundTripper] that retries the transient failures
// of the Defender XDR, Defender for Endpoint and Microsoft Graph security
// APIs and turns the others into an [*Error].
//
// Unlike a plain RoundTripper, it reads the status and the error body of
// each response:
//   - 429, 500, 502, 503 and 504, and network failures before a response,
//     are retried with jittered exponential backoff. Retry-After is a
//     minimum wait; a wait longer than the maximum wait, or past the
//     request's deadline, ends the request at once.
//   - 401 calls the refresh function and sends the request once more with
//     the new token.
//   - Any other status of 400 or above fails at once.
//
// In each failure case RoundTrip returns a nil response and an *Error, so
// that errors.As finds it in what [http.Client.Do] returns. Responses below
// 400 are returned as they arrive, with the body unread.
//
// The caller's request is never modified. A body is sent again from
// Request.GetBody when it is set, else from a copy in memory. As with
// [http.Client], the base transport gets the caller's header map unless a
// new token replaced it, so a base must not write to the header, as the
// [http.RoundTripper] contract requires. A Transport is safe for
// concurrent use.
type Transport struct {
	base   http.RoundTripper
	policy policy
	client *retryablehttp.Client
	tokens tokens
	budget *budget // nil when disabled
	gates  *gates  // nil when disabled
	pacer  *pacer  // nil when no class is paced

	// now and sleep are the clock, replaced in tests.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

var errNilURL = errors.New("nil Request.URL")

// retryLoopLimit is retryablehttp's RetryMax. The transport's own counts
// decide when to stop; this only keeps retryablehttp from stopping first.
const retryLoopLimit = 1 << 20

// New returns a Transport that sends requests through base, or through
// [http.DefaultTransport] when base is nil.
func New(base http.RoundTripper, opts ...Option) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	t := &Transport{base: base, policy: defaultPolicy(), now: time.Now, sleep: sleepContext}
	for _, opt := range opts {
		opt(&t.policy)
	}
	t.budget = newBudget(t.policy.budgetTokens, t.policy.budgetCost)
	if t.policy.gate {
		t.gates = &gates{}
	}
	if len(t.policy.pacing) > 0 {
		t.pacer = newPacer(t.policy.pacing)
	}

	t.client = &retryablehttp.Client{
		HTTPClient: &http.Client{
			// retryablehttp calls CloseIdleConnections on every failed
			// return, which would cost the pool its connections on each
			// fail-fast error. attemptTransport does not have the method.
			Transport: attemptTransport{base},
			// Redirects belong to the caller's client. The inner client
			// opens the next hop's body from GetBody before it calls
			// CheckRedirect and drops that request on ErrUseLastResponse,
			// so the body is closed here.
			CheckRedirect: func(next *http.Request, _ []*http.Request) error {
				if next.Body != nil {
					next.Body.Close()
				}
				return http.ErrUseLastResponse
			},
		},
		RetryMax:     retryLoopLimit,
		CheckRetry:   t.checkRetry,
		Backoff:      noBackoff,
		PrepareRetry: t.prepareRetry,
		ErrorHandler: closeOnError,
		// Logger stays nil: retryablehttp's default logger writes to stderr.
	}
	return t
}

// RoundTrip sends req and retries it as described on [Transport].
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := &call{Context: req.Context(), t: t, req: req, policy: t.policyFor(req.Context())}
	if req.URL == nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return c.finish(nil, c.fail(reasonRequest, errNilURL))
	}
	if c.policy.maxElapsed > 0 {
		c.start = t.now()
	}
	// The copy lives inside the call: WithContext's result does not escape,
	// so this costs no allocation of its own.
	c.out = *req.WithContext(c)
	out := &c.out
	if out.Host == out.URL.Host {
		// An empty Host means URL.Host and sends the same Host header; it
		// spares the inner http.Client a copy of the URL.
		out.Host = ""
	}
	// The inner http.Client rejects a RequestURI, which server requests
	// such as those that httputil.ReverseProxy forwards carry, and turns
	// URL user info into basic auth, which a plain RoundTripper never
	// sends.
	out.RequestURI = ""
	if out.URL.User != nil {
		u := *out.URL
		u.User = nil
		out.URL = &u
	}
	t.replaceRejectedToken(out)
	c.header = out.Header
	out.Header = innerHeader

	var body *requestBody
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = newRequestBody(c.Context, req, c.policy.maxRetries > 0 || c.policy.refresh != nil)
		if err != nil {
			return c.finish(nil, c.fail(reasonRequest, err))
		}
		out.Body = nil
		c.body = body
	}
	if err := c.awaitQuota(); err != nil {
		body.close()
		return c.finish(nil, err)
	}

	// The call holds the retryablehttp.Request, which saves an allocation
	// over retryablehttp.FromRequest and does the same for a nil body.
	c.rreq.Request = out
	if body != nil {
		err := c.rreq.SetBody(retryablehttp.ReaderFunc(body.next))
		// SetBody guesses these from the first body; the caller's are exact.
		out.ContentLength = req.ContentLength
		out.GetBody = body.getBody
		if err != nil {
			body.close()
			return c.finish(nil, c.fail(reasonRequest, err))
		}
	}

	resp, err := t.client.Do(&c.rreq)
	body.close()
	switch {
	case c.final != nil && ErrorFromResponse(resp) != nil:
		// WithErrorResponses: the caller gets the response itself.
		resp.Request = req
		return c.finish(resp, c.final)
	case c.final != nil:
		closeResponse(resp)
		return c.finish(nil, c.final)
	case err != nil:
		// retryablehttp returns without consulting CheckRetry when the
		// context ends during its own timer or when a body cannot be
		// rewound.
		return c.finish(nil, c.fail(c.stopReason(reasonRequest, err), err))
	}
	// The response belongs to the caller's request, not to the copy.
	resp.Request = req
	t.budget.earn(c.retries)
	return c.finish(resp, nil)
}

// policyFor returns the Transport's policy, or a copy with the options
// that ContextWithOptions put in ctx applied.
func (t *Transport) policyFor(ctx context.Context) *policy {
	opts, _ := ctx.Value(requestOptionsKey{}).([]Option)
	if len(opts) == 0 {
		return &t.policy
	}
	p := t.policy
	for _, opt := range opts {
		opt(&p)
	}
	return &p
}

// CloseIdleConnections closes the idle connections of the base transport,
// if it has that method.
func (t *Transport) CloseIdleConnections() {
	if ci, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// replaceRejectedToken swaps a bearer token that a 401 already rejected for
// its replacement, cloning the header first.
func (t *Transport) replaceRejectedToken(out *http.Request) {
	if t.tokens.count.Load() == 0 {
		return
	}
	fresh, ok := t.tokens.current(bearerToken(out.Header))
	if !ok {
		return
	}
	out.Header = withBearer(out.Header, fresh)
}

// withBearer returns a copy of h that carries token.
func withBearer(h http.Header, token string) http.Header {
	h = h.Clone()
	if h == nil {
		h = make(http.Header)
	}
	h.Set("Authorization", "Bearer "+token)
	return h
}

// checkRetry is retryablehttp's CheckRetry. It classifies each attempt and
// records the decision in the call. It never returns an error: a final
// failure is returned as a success to retryablehttp, which then keeps the
// connection pool intact, and RoundTrip turns it into c.final.
func (t *Transport) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	c := callFrom(ctx)
	if c == nil {
		return false, nil
	}
	c.attempts++
	if err == nil && resp.StatusCode < 400 {
		return false, nil
	}

	var (
		v     verdict
		raw   []byte
		cause = err
		drain = true
	)
	if err != nil {
		v.action = classifyError(c.Context, err)
		cause = unwrapURLError(err)
	} else {
		raw = peekErrorBody(resp)
		if clock := c.clock; clock != nil {
			expired := clock.expired()
			if c.policy.errorResponses {
				// The caller may get the rest of this body, which the clock
				// must not cut after this check. Without the clock, a drain
				// could stall, so a discarded body is closed undrained.
				expired = !clock.stop()
				c.clock = nil
				drain = false
			}
			if expired {
				// The status still decides; only the body was cut short.
				cause = &attemptTimeoutError{limit: clock.limit, body: true}
			}
		}
		v = classifyResponse(resp.StatusCode, resp.Header, decodeErrorBody(resp.Header, raw), t.now())
	}
	c.record(v, cause)
	retry := c.decide(v, cause)

	if resp != nil && err == nil {
		switch {
		case !retry && c.policy.errorResponses && c.final != nil && c.final.reason != reasonCanceled:
			restoreBody(resp, raw, c.final)
		case drain:
			discardBody(resp)
		default:
			resp.Body.Close()
			resp.Body = http.NoBody
		}
	}
	if c.clock != nil {
		c.clock.stop()
		c.clock = nil
	}
	return retry, nil
}

// decide turns the verdict of a failed attempt into a retry, or into
// c.final, and reports whether to retry.
func (c *call) decide(v verdict, err error) bool {
	if bodyErr := c.body.failed(); bodyErr != nil && err != nil {
		// The caller's body failed, not the network: sending it again
		// would fail the same way.
		c.final = c.newError(c.stopReason(reasonRequest, err), bodyErr)
		return false
	}
	if c.Context.Err() != nil {
		// The context ended while the error body was read.
		c.final = c.newError(reasonCanceled, context.Cause(c.Context))
		return false
	}

	switch v.action {
	case actionRetry:
		return c.planRetry(v, err)
	case actionRefresh:
		return c.planRefresh()
	default:
		c.final = c.newError(c.stopReason(reasonFailFast, err), err)
		return false
	}
}

// prepareRetry is retryablehttp's PrepareRetry: it waits the planned time,
// then fetches a new token if the last attempt was a 401. An error here
// ends the request.
func (t *Transport) prepareRetry(req *http.Request) error {
	c := callFrom(req.Context())
	if c == nil {
		return nil
	}
	if err := t.sleep(c.Context, c.wait); err != nil {
		c.final = c.newError(reasonCanceled, err)
		return err
	}
	// retryablehttp made req a shallow copy of the request that
	// attemptTransport gave the real header.
	req.Header = innerHeader
	if !c.refreshNext {
		return nil
	}
	c.refreshNext = false

	token, err := t.tokens.get(c.Context, c.policy.refresh, c.rejected, c.describeLast())
	if err != nil {
		if c.Context.Err() != nil {
			c.final = c.newError(reasonCanceled, err)
		} else {
			c.final = c.newError(reasonRefresh, err)
		}
		return err
	}
	// The header map is still the caller's; attemptTransport sends the
	// copy.
	c.header = withBearer(c.header, token)
	return nil
}

// noBackoff is retryablehttp's Backoff. The transport computes each wait
// in checkRetry, where the response body is still readable, and sleeps in
// prepareRetry, where the request's context is at hand.
func noBackoff(time.Duration, time.Duration, int, *http.Response) time.Duration { return 0 }

// closeOnError is retryablehttp's ErrorHandler. It keeps retryablehttp from
// draining and wrapping, and makes sure no response leaks with the error.
func closeOnError(resp *http.Response, err error, _ int) (*http.Response, error) {
	closeResponse(resp)
	return nil, err
}

// closeResponse closes resp's body, if there is one. The inner http.Client
// replaces a nil Body, so a body is missing only when resp is nil.
func closeResponse(resp *http.Response) {
	if resp != nil {
		resp.Body.Close()
	}
}

// sleepContext waits for d or until ctx ends.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// unwrapURLError removes the *url.Error that the inner http.Client adds, so
// that the error the caller sees names the request only once.
func unwrapURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

package xdrretry

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Defaults. They suit Defender's and Graph's published limits: most quotas
// are per minute, so a few retries spread over about half a minute ride out
// a throttle or a gateway restart, and a wait of up to two minutes covers a
// per-minute window while an hourly one fails at once.
const (
	// DefaultMaxRetries is the number of retries after the first attempt.
	DefaultMaxRetries = 4

	// DefaultInitialBackoff and DefaultMaxBackoff bound the jittered
	// exponential backoff: waits of about 1 s, 2 s, 4 s, 8 s (each ±50%),
	// never more than 30 s.
	DefaultInitialBackoff = 1 * time.Second
	DefaultMaxBackoff     = 30 * time.Second

	// DefaultMaxWait is the longest single wait the transport sleeps. A
	// Retry-After or quota window longer than this ends the request at once
	// with an error that states how long to wait.
	DefaultMaxWait = 2 * time.Minute
)

// backoffMultiplier and backoffJitter shape the exponential backoff: each
// wait doubles, and each is drawn from ±50% around its mean so that clients
// that failed together do not retry together.
const (
	backoffMultiplier = 2
	backoffJitter     = 0.5
)

// An Option configures a [Transport] in [New].
type Option func(*policy)

// policy is the configuration that options set.
type policy struct {
	maxRetries     int
	initialBackoff time.Duration
	maxBackoff     time.Duration
	maxWait        time.Duration
	attemptTimeout time.Duration
	maxElapsed     time.Duration
	retryMethods   []string // nil means every method
	errorResponses bool
	refresh        RefreshFunc
	logger         *slog.Logger
	onRetry        func(RetryEvent)
	onOutcome      func(Outcome)

	// Settings of state that the Transport shares between requests. They
	// take effect only in New, not per request.
	budgetTokens int
	budgetCost   int
	gate         bool
	pacing       map[QuotaClass]pace
}

// pace is a client-side rate for one quota class.
type pace struct {
	perMinute float64
	burst     int
}

func defaultPolicy() policy {
	return policy{
		maxRetries:     DefaultMaxRetries,
		initialBackoff: DefaultInitialBackoff,
		maxBackoff:     DefaultMaxBackoff,
		maxWait:        DefaultMaxWait,
		budgetTokens:   DefaultRetryBudget,
		budgetCost:     DefaultRetryCost,
		gate:           true,
	}
}

// retries reports whether transient failures of method are retried.
func (p *policy) retries(method string) bool {
	if p.retryMethods == nil {
		return true
	}
	for _, m := range p.retryMethods {
		if strings.EqualFold(m, method) {
			return true
		}
	}
	return false
}

// WithMaxRetries sets the number of retries after the first attempt for
// transient failures. 0 disables them; a negative n is treated as 0. The
// single retry after a token refresh is not counted.
func WithMaxRetries(n int) Option {
	return func(p *policy) { p.maxRetries = max(n, 0) }
}

// WithBackoff sets the bounds of the jittered exponential backoff: initial
// is the mean of the first wait and maxInterval caps every wait. A value of
// 0 or less keeps that bound's default, and a maxInterval below initial is
// raised to initial.
func WithBackoff(initial, maxInterval time.Duration) Option {
	return func(p *policy) {
		if initial > 0 {
			p.initialBackoff = initial
		}
		if maxInterval > 0 {
			p.maxBackoff = maxInterval
		}
		p.maxBackoff = max(p.maxBackoff, p.initialBackoff)
	}
}

// WithMaxWait sets the longest single wait before a retry. When a response
// requires a longer wait (Retry-After, or an hourly quota window), the
// request fails at once with an [Error] whose RetryAfter states how long to
// wait. A value of 0 or less keeps the default, [DefaultMaxWait].
func WithMaxWait(d time.Duration) Option {
	return func(p *policy) {
		if d > 0 {
			p.maxWait = d
		}
	}
}

// WithAttemptTimeout limits how long each attempt may wait for the
// response headers. An attempt that times out counts as a network failure
// and is retried. The limit never cuts the body of a response below 400.
// The body of an error response, which the Transport reads itself, must
// arrive within the same limit. When it does not, the status still
// decides what happens, and the error's cause is the timeout. 0, the default, sets no
// limit beyond the request's context.
//
// NOTE: The limit cancels the attempt's context, so a base transport that
// ignores the request's context is not bounded by it.
func WithAttemptTimeout(d time.Duration) Option {
	return func(p *policy) { p.attemptTimeout = max(d, 0) }
}

// WithMaxElapsed limits the total time of a request across its attempts
// and waits, measured until the headers of the last response, or the end
// of its body when the Transport reads it (a status of 400 or above). The
// transport does not start a wait or an attempt that would pass it, and
// the request's context deadline applies too when it is sooner. 0, the
// default, sets no limit beyond the context.
func WithMaxElapsed(d time.Duration) Option {
	return func(p *policy) { p.maxElapsed = max(d, 0) }
}

// WithRetryMethods limits the retries of transient failures to requests
// with one of the given methods, such as GET and HEAD, so that a
// non-idempotent action is never sent twice. By default every method is
// retried, because the Defender APIs reject a duplicate machine action
// with ActiveRequestAlreadyExists. The one retry after a token refresh is
// allowed for every method, because a 401 means the request was not
// processed.
func WithRetryMethods(methods ...string) Option {
	return func(p *policy) { p.retryMethods = append([]string{}, methods...) }
}

// WithRetryBudget sets the retry budget that all requests of the Transport
// share: a bucket of tokens from which each retry spends cost. A request
// that succeeds at once earns one token back, and one that succeeds after
// retries earns back their cost. When the bucket is empty, requests fail
// with their last error instead of retrying, so that a failing service is
// not sent more load. A tokens or cost of 0 or less disables the budget.
// The default is [DefaultRetryBudget] tokens and [DefaultRetryCost] a
// retry. It has no effect through [ContextWithOptions].
func WithRetryBudget(tokens, cost int) Option {
	return func(p *policy) { p.budgetTokens, p.budgetCost = tokens, cost }
}

// WithThrottleGate turns the throttle gate on or off; it is on by default.
// When a response reports a quota as spent (a 429, or a 503 with
// Retry-After), the gate holds the requests of the same host and
// [QuotaClass] that start or retry before the quota returns, instead of
// sending them into a certain 429. One response shuts the gate for at
// most an hour, the longest quota window that Defender publishes. The
// wait is bounded by the maximum wait and the request's deadline. It has
// no effect through
// [ContextWithOptions].
func WithThrottleGate(enabled bool) Option {
	return func(p *policy) { p.gate = enabled }
}

// WithPacing paces the requests of one quota class on the client, at most
// perMinute a minute per host with bursts of up to burst, so that a busy
// collector stays under a published quota instead of meeting 429s. A
// request whose turn is further away than the maximum wait, or than its
// deadline, fails at once with [ErrWaitTooLong]. Pacing is off by default.
// See [QuotaClass] for the published limits. A perMinute of 0 or less
// turns pacing off for the class. It has no effect through
// [ContextWithOptions].
func WithPacing(class QuotaClass, perMinute float64, burst int) Option {
	return func(p *policy) {
		pacing := make(map[QuotaClass]pace, len(p.pacing)+1)
		for k, v := range p.pacing {
			pacing[k] = v
		}
		if perMinute > 0 {
			pacing[class] = pace{perMinute: perMinute, burst: max(burst, 1)}
		} else {
			delete(pacing, class)
		}
		p.pacing = pacing
	}
}

// WithErrorResponses makes a request that fails with a response return
// that last response, body intact, instead of an [*Error], for SDKs such as
// Kiota and azcore that parse error bodies themselves. [ErrorFromResponse]
// still returns the typed error of such a response. Failures without a
// response (network errors, a cancelled context, a failed token refresh)
// still return an *Error. Off by default.
func WithErrorResponses(enabled bool) Option {
	return func(p *policy) { p.errorResponses = enabled }
}

// RefreshFunc returns a new access token after the service rejected a
// request with 401. rejected describes that 401: its code, message,
// tracking ID and WWW-Authenticate challenge, whose Claims a continuous
// access evaluation challenge fills. The token is sent as
// "Authorization: Bearer <token>".
type RefreshFunc func(ctx context.Context, rejected *Error) (token string, err error)

// WithTokenRefresh sets the function that the transport calls on a 401.
// The request is then sent once more with the new token. Requests rejected
// with the same token share one call, and later requests that still carry
// a rejected token are sent with its replacement. Without it, a 401 fails
// at once. The function gets a context apart from the request's, so that
// one caller giving up does not fail the others. A call that has not
// returned within a minute fails the requests that wait for it.
func WithTokenRefresh(fn RefreshFunc) Option {
	return func(p *policy) { p.refresh = fn }
}

// WithLogger sets the logger for retries (Debug), for requests that failed
// after retries or a refresh (Warn), and for other failures (Debug). Nil,
// the default, logs nothing. Records carry the method, the URL without its
// query, the attempt, the status, the code, the tracking ID and the wait;
// never a header or a token.
func WithLogger(l *slog.Logger) Option {
	return func(p *policy) { p.logger = l }
}

// RetryEvent describes a failed attempt that the transport is about to
// retry.
type RetryEvent struct {
	Request    *http.Request // the caller's request; do not modify it
	Attempt    int           // the failed attempt, from 1
	Wait       time.Duration // wait before the next attempt
	StatusCode int           // 0 when no response arrived
	Code       string        // service error code or status name
	TrackingID string
	Err        error // network error when no response arrived
	Refresh    bool  // the next attempt carries a refreshed token
}

// WithRetryHook sets a function called before each wait for a retry, on
// the request's goroutine. It must not block for long.
func WithRetryHook(fn func(RetryEvent)) Option {
	return func(p *policy) { p.onRetry = fn }
}

// Outcome describes how a request ended, for metrics.
type Outcome struct {
	Request    *http.Request // the caller's request; do not modify it
	Attempts   int           // requests sent, 0 when none was
	Retries    int           // retries of transient failures
	Refreshed  bool          // a token refresh was made
	StatusCode int           // status of the last response, 0 when none arrived
	Code       string        // service error code of a failure
	TrackingID string        // tracking ID of a failure, when present
	Err        error         // nil on success; an *Error otherwise
}

// WithOutcomeHook sets a function called once at the end of every request,
// on the request's goroutine, with how it ended. It must not block for
// long.
func WithOutcomeHook(fn func(Outcome)) Option {
	return func(p *policy) { p.onOutcome = fn }
}

// requestOptionsKey finds the options of one request in its context.
type requestOptionsKey struct{}

// ContextWithOptions returns a context that applies opts, after the
// Transport's own options, to the request made with it. Use it to change
// the policy of one call: no retries for a machine action, a longer
// maximum wait for a nightly export. Options of state that the Transport
// shares ([WithRetryBudget], [WithThrottleGate], [WithPacing]) have no
// effect here.
func ContextWithOptions(ctx context.Context, opts ...Option) context.Context {
	if prev, ok := ctx.Value(requestOptionsKey{}).([]Option); ok {
		opts = append(append([]Option{}, prev...), opts...)
	}
	return context.WithValue(ctx, requestOptionsKey{}, opts)
}

// newBackoff returns the per-request backoff. ExponentialBackOff keeps
// state, so each request gets its own.
func (p *policy) newBackoff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.initialBackoff),
		backoff.WithMaxInterval(p.maxBackoff),
		backoff.WithMultiplier(backoffMultiplier),
		backoff.WithRandomizationFactor(backoffJitter),
		backoff.WithMaxElapsedTime(0),
	)
}

// retryWait computes the wait before the next attempt after a retryable
// verdict, from next, the backoff's next interval, and timeLeft, the time
// before the request's deadline. It returns false when the transport must
// not sleep that long: the request then fails with the wait in its error.
//
// Retry-After is a minimum: the wait is the larger of it and the backoff,
// so repeated 429s with "Retry-After: 1" still wait longer each time. A
// quota window from the message caps the backoff instead, and a window
// longer than the maximum wait is not worth a blind wait.
func (p *policy) retryWait(v verdict, next, timeLeft time.Duration) (time.Duration, bool) {
	// The backoff's jitter may exceed its cap by up to half. Keeping it
	// under both caps means that only the service's own demands end a
	// request.
	wait := min(next, p.maxBackoff, p.maxWait)

	switch {
	case v.hasRetryAfter:
		wait = max(wait, v.retryAfter)
	case v.window > p.maxWait:
		return v.window, false
	case v.window > 0:
		wait = min(wait, v.window)
	}

	if wait > p.maxWait || wait > timeLeft {
		return wait, false
	}
	return wait, true
}

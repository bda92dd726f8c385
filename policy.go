package xdrretry

import (
	"context"
	"log/slog"
	"net/http"
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
	// with an error that says how long to wait.
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
	refresh        RefreshFunc
	logger         *slog.Logger
	onRetry        func(RetryEvent)
}

func defaultPolicy() policy {
	return policy{
		maxRetries:     DefaultMaxRetries,
		initialBackoff: DefaultInitialBackoff,
		maxBackoff:     DefaultMaxBackoff,
		maxWait:        DefaultMaxWait,
	}
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
// request fails at once with an [Error] whose RetryAfter says how long to
// wait. A value of 0 or less keeps the default, [DefaultMaxWait].
func WithMaxWait(d time.Duration) Option {
	return func(p *policy) {
		if d > 0 {
			p.maxWait = d
		}
	}
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
// at once.
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
	// The backoff's jitter may exceed its cap by up to half; keep it under
	// both caps so that only the service's own demands end a request.
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

package xdrretry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// errQuotaHeld is the cause of a request that the throttle gate or the
// pacer held longer than it may wait.
var errQuotaHeld = errors.New("the quota of this endpoint is spent or paced")

// attemptTimeoutError is the error of an attempt whose response headers
// did not arrive within the attempt timeout. It is a net.Error with
// Timeout true, so the attempt is retried like any network timeout.
type attemptTimeoutError struct {
	limit time.Duration
	body  bool // the headers arrived, the error body did not
}

func (e *attemptTimeoutError) Error() string {
	limit := e.limit
	if limit > time.Millisecond {
		limit = limit.Round(time.Millisecond)
	}
	if e.body {
		return "the error body did not arrive within the attempt's time limit of " + limit.String()
	}
	return "no response headers within the attempt's time limit of " + limit.String()
}
func (e *attemptTimeoutError) Timeout() bool   { return true }
func (e *attemptTimeoutError) Temporary() bool { return true }

// innerHeader is the Header of the requests that the Transport hands to
// the inner http.Client. That client clones the header of every request
// it sends, for redirects that the Transport never follows; an empty map
// makes the clone cheap. attemptTransport puts the request's own header
// back before the request reaches the base transport, so this shared map is never
// passed on and never written.
var innerHeader = http.Header{}

// attemptTransport sends one attempt through the base transport, with the
// attempt's time limit. It is the Transport of retryablehttp's inner
// http.Client and deliberately has no CloseIdleConnections method.
type attemptTransport struct{ base http.RoundTripper }

func (a attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := callFrom(req.Context())
	if c == nil {
		return a.base.RoundTrip(req)
	}
	// req is the Transport's own copy; it arrives with innerHeader.
	req.Header = c.header
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	limit := c.attemptLimit()
	if limit <= 0 {
		return a.base.RoundTrip(req)
	}

	// The timer cancels the attempt while it waits for headers. When the
	// headers of a success arrive, the clock stops, so the timer never cuts
	// its body. The Transport reads an error body inside RoundTrip, where
	// the caller cannot bound the read, so for a status of 400 or above
	// the clock runs until checkRetry has read it. The attempt's context
	// is released when the body is closed.
	clock := &attemptClock{limit: limit}
	ctx, cancel := context.WithCancel(req.Context())
	clock.timer = time.AfterFunc(limit, func() {
		if clock.state.CompareAndSwap(clockRunning, clockExpired) {
			cancel()
		}
	})
	resp, err := a.base.RoundTrip(req.WithContext(ctx))
	if err == nil && resp.Body != nil && resp.StatusCode >= 400 && !clock.expired() {
		resp.Body = withCancel(resp.Body, cancel)
		c.clock = clock
		return resp, nil
	}
	if !clock.stop() {
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		return nil, &attemptTimeoutError{limit: limit}
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.Body == nil {
		// The inner http.Client accepts a nil Body (it rejects one with
		// content) and leaves nothing for the context to guard.
		cancel()
		return resp, nil
	}
	resp.Body = withCancel(resp.Body, cancel)
	return resp, nil
}

// States of an attemptClock.
const (
	clockRunning = iota
	clockStopped
	clockExpired
)

// attemptClock is the time limit of one attempt.
type attemptClock struct {
	limit time.Duration
	timer *time.Timer
	state atomic.Int32
}

// stop stops the clock and reports whether it stopped before the limit.
func (a *attemptClock) stop() bool {
	a.timer.Stop()
	return a.state.CompareAndSwap(clockRunning, clockStopped) || a.state.Load() == clockStopped
}

// expired reports whether the limit has passed and canceled the attempt.
func (a *attemptClock) expired() bool { return a.state.Load() == clockExpired }

// attemptLimit returns the time the next attempt may wait for headers:
// the attempt timeout, cut to the time left of the maximum elapsed time.
// It returns 0 for no limit.
func (c *call) attemptLimit() time.Duration {
	limit := c.policy.attemptTimeout
	if c.policy.maxElapsed > 0 {
		left := max(c.start.Add(c.policy.maxElapsed).Sub(c.t.now()), time.Nanosecond)
		if limit == 0 || left < limit {
			limit = left
		}
	}
	return limit
}

// withCancel returns body with a Close that also releases the attempt's
// context. A body that can be written to, as the body of a 101 Switching
// Protocols response is, keeps its Write method.
func withCancel(body io.ReadCloser, cancel context.CancelFunc) io.ReadCloser {
	b := &cancelOnClose{ReadCloser: body, cancel: cancel}
	if w, ok := body.(io.Writer); ok {
		return cancelOnCloseWriter{b, w}
	}
	return b
}

// cancelOnClose releases an attempt's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// cancelOnCloseWriter is cancelOnClose for a body that can be written to.
type cancelOnCloseWriter struct {
	*cancelOnClose
	io.Writer
}

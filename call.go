package xdrretry

import (
	"context"
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/time/rate"
)

// callKey finds the call in a request's context.
type callKey struct{}

// call is the state of one RoundTrip. It is the context of every attempt,
// so that retryablehttp's hooks, which see only the request or its
// context, can find it without a second allocation.
type call struct {
	context.Context // the caller's context

	t      *Transport
	policy *policy               // the Transport's, or a copy for this request
	start  time.Time             // set only when policy.maxElapsed is
	out    http.Request          // the copy of req that is sent
	rreq   retryablehttp.Request // wraps out for retryablehttp
	body   *requestBody          // nil when the request has no body
	req    *http.Request         // the caller's request, never modified
	header http.Header           // the header that the latest attempt sent
	clock  *attemptClock         // the time limit of an error body being read

	attempts    int
	retries     int  // retries of transient failures so far
	refreshed   bool // the one refresh of this request was used
	refreshNext bool // the next attempt needs a new token
	rejected    string
	wait        time.Duration // wait before the next attempt
	backoff     *backoff.ExponentialBackOff

	last    *Error    // the latest failed attempt
	history []Attempt // failed attempts before last
	final   *Error    // set when the request has failed for good
}

func (c *call) Value(key any) any {
	if key == (callKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// requestMethod returns the method that net/http sends for r: GET when
// r.Method is empty.
func requestMethod(r *http.Request) string {
	if r.Method == "" {
		return http.MethodGet
	}
	return r.Method
}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// record makes v the latest failed attempt and moves the previous one to
// the history.
func (c *call) record(v verdict, err error) {
	if c.last != nil {
		c.history = append(c.history, Attempt{
			StatusCode: c.last.StatusCode,
			Code:       c.last.Code,
			TrackingID: c.last.TrackingID,
			Err:        c.last.Err,
			Wait:       c.wait,
		})
	}
	c.wait = 0
	info := v.info
	c.last = &Error{
		StatusCode:      info.statusCode,
		Code:            info.code,
		Message:         info.message,
		Target:          info.target,
		InnerCode:       info.innerCode,
		TrackingID:      info.trackingID,
		ClientRequestID: info.clientRequestID,
		Challenge:       info.challenge,
		Snippet:         info.snippet,
		Err:             err,
		transient:       v.action == actionRetry,
	}
}

// planRetry decides whether a transient failure is retried and how long
// to wait first.
func (c *call) planRetry(v verdict, err error) bool {
	p := c.policy
	if c.backoff == nil {
		c.backoff = p.newBackoff()
	}
	now := c.t.now()
	timeLeft := c.timeLeft(now)
	wait, ok := p.retryWait(v, c.backoff.NextBackOff(), timeLeft)
	// The error of a throttled request that stops gives the wait in
	// RetryAfter.
	var stopWait time.Duration
	if v.throttles() {
		stopWait = wait
	}

	switch {
	case !p.retries(requestMethod(c.req)) || p.maxRetries == 0:
		c.shutGate(v, now, wait)
		c.final = c.newErrorAfter(c.stopReason(reasonFailFast, err), err, stopWait)
		return false
	case c.retries >= p.maxRetries:
		c.shutGate(v, now, wait)
		c.final = c.newErrorAfter(c.stopReason(reasonExhausted, err), err, stopWait)
		return false
	}

	if ok {
		// Another request's throttle, or the pacer, may hold this one
		// longer than its own backoff.
		hold, res := c.quotaHold(now)
		if hold > wait {
			wait = hold
			ok = wait <= p.maxWait && wait <= timeLeft
		}
		if !ok && res != nil {
			res.CancelAt(now)
		}
	}
	c.shutGate(v, now, wait)
	if !ok {
		c.final = c.newErrorAfter(reasonWait, err, wait)
		return false
	}
	if !c.t.budget.spend() {
		c.final = c.newErrorAfter(reasonBudget, err, stopWait)
		return false
	}

	c.retries++
	c.wait = wait
	c.notify(false)
	return true
}

// shutGate closes the throttle gate of the request's host and quota class
// until wait from now, when v reports the quota as spent. Every request of
// that host and class meets the same quota, whether or not this one
// retries.
func (c *call) shutGate(v verdict, now time.Time, wait time.Duration) {
	if v.throttles() && c.t.gates != nil {
		c.t.gates.close(quotaKeyOf(c.req.URL), now.Add(min(wait, maxGateHold)))
	}
}

// timeLeft returns the time until the request's deadline or the end of its
// maximum elapsed time, whichever is sooner.
func (c *call) timeLeft(now time.Time) time.Duration {
	left := time.Duration(math.MaxInt64)
	if deadline, ok := c.Deadline(); ok {
		left = deadline.Sub(now)
	}
	if c.policy.maxElapsed > 0 {
		left = min(left, c.start.Add(c.policy.maxElapsed).Sub(now))
	}
	return left
}

// quotaHold returns how long the throttle gate and the pacer hold the
// request from now, and the pacer's reservation, if one was made.
func (c *call) quotaHold(now time.Time) (time.Duration, *rate.Reservation) {
	t := c.t
	gated := t.gates != nil && t.gates.count.Load() > 0
	if !gated && t.pacer == nil {
		return 0, nil
	}
	key := quotaKeyOf(c.req.URL)
	var hold time.Duration
	if gated {
		if r := t.gates.remaining(key, now); r > 0 {
			hold = r + gateSpread(r)
		}
	}
	l := t.pacer.limiter(key)
	if l == nil {
		return hold, nil
	}
	res := l.ReserveN(now, 1)
	if !res.OK() {
		return hold, nil
	}
	return max(hold, res.DelayFrom(now)), res
}

// awaitQuota holds the first attempt while the throttle gate or the pacer
// requires. A hold longer than the maximum wait or the time left fails at
// once with TooManyRequests.
func (c *call) awaitQuota() *Error {
	t := c.t
	if (t.gates == nil || t.gates.count.Load() == 0) && t.pacer == nil {
		return nil
	}
	now := t.now()
	hold, res := c.quotaHold(now)
	if hold <= 0 {
		return nil
	}
	if hold > c.policy.maxWait || hold > c.timeLeft(now) {
		if res != nil {
			res.CancelAt(now)
		}
		c.last = &Error{Code: statusName(http.StatusTooManyRequests), transient: true}
		if c.final == nil {
			c.final = c.newErrorAfter(reasonWait, errQuotaHeld, hold)
		}
		return c.final
	}
	if err := t.sleep(c.Context, hold); err != nil {
		if res != nil {
			res.CancelAt(t.now())
		}
		return c.fail(reasonCanceled, err)
	}
	return nil
}

// finish calls the outcome hook and returns what RoundTrip returns: the
// response when there is one, else err.
func (c *call) finish(resp *http.Response, err *Error) (*http.Response, error) {
	if fn := c.policy.onOutcome; fn != nil {
		o := Outcome{Request: c.req, Attempts: c.attempts, Retries: c.retries, Refreshed: c.refreshed}
		if err != nil {
			o.StatusCode, o.Code, o.TrackingID, o.Err = err.StatusCode, err.Code, err.TrackingID, err
		} else {
			o.StatusCode = resp.StatusCode
		}
		fn(o)
	}
	if resp != nil {
		return resp, nil
	}
	return nil, err
}

// planRefresh decides whether a 401 is retried with a new token.
func (c *call) planRefresh() bool {
	switch {
	case c.policy.refresh == nil:
		c.final = c.newError(reasonRefresh, errNoRefresh)
		return false
	case c.refreshed:
		c.final = c.newError(reasonRefresh, errSecond401)
		return false
	}
	c.refreshed = true
	c.refreshNext = true
	c.rejected = bearerToken(c.header)
	c.notify(true)
	return true
}

// notify reports the planned retry to the retry hook and the logger.
func (c *call) notify(refresh bool) {
	p := c.policy
	if p.onRetry == nil && p.logger == nil {
		return
	}
	ev := RetryEvent{
		Request:    c.req,
		Attempt:    c.attempts,
		Wait:       c.wait,
		StatusCode: c.last.StatusCode,
		Code:       c.last.Code,
		TrackingID: c.last.TrackingID,
		Err:        c.last.Err,
		Refresh:    refresh,
	}
	if p.onRetry != nil {
		p.onRetry(ev)
	}
	c.t.logRetry(c, ev)
}

// stopReason returns reasonCanceled when the request's context has ended
// or err comes from it, else r.
func (c *call) stopReason(r reason, err error) reason {
	if c.Context.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return reasonCanceled
	}
	return r
}

// newError returns the final error: the latest failed attempt with the
// request, the attempt count, the history and the cause.
func (c *call) newError(r reason, cause error) *Error {
	return c.newErrorAfter(r, cause, 0)
}

// newErrorAfter is newError with the wait that the error reports in
// RetryAfter.
func (c *call) newErrorAfter(r reason, cause error, retryAfter time.Duration) *Error {
	e := c.last
	if e == nil {
		e = &Error{}
	}
	e.Method = requestMethod(c.req)
	e.URL = redactURL(c.req.URL)
	e.Attempts = c.attempts
	e.History = c.history
	e.reason = r
	e.RetryAfter = retryAfter
	if cause != nil {
		e.Err = cause
	}
	c.t.logGiveUp(c, e)
	return e
}

// describeLast returns a copy of the latest failed attempt, filled in as a
// final error would be, for the refresh function.
func (c *call) describeLast() *Error {
	e := *c.last
	e.Method = requestMethod(c.req)
	e.URL = redactURL(c.req.URL)
	e.Attempts = c.attempts
	e.History = append([]Attempt(nil), c.history...)
	e.reason = reasonRefresh
	return &e
}

// fail records a failure that has no response of its own to describe.
func (c *call) fail(r reason, err error) *Error {
	if c.final == nil {
		c.final = c.newError(r, err)
	}
	return c.final
}

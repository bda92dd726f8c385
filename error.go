package xdrretry

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Error is the error that [Transport.RoundTrip] returns when a request fails:
// a fail-fast status, retries that ran out, a 401 that a token refresh could
// not cure, a wait longer than the transport may sleep, or a transport failure.
//
// StatusCode, Code, Message and TrackingID describe the last response. They
// are zero when no response arrived, and then Err holds the network error.
type Error struct {
	// Method and URL identify the request. URL has no query, no fragment
	// and no password.
	Method string
	URL    string

	// StatusCode is the HTTP status of the last response, or 0.
	StatusCode int

	// Code is the service's error code, such as "NotFound" or
	// "InvalidRequestBody". A numeric code such as "429" is replaced by the
	// status name ("TooManyRequests"); without a code in the body, Code is the
	// status name.
	Code string

	// Message is the service's error message.
	Message string

	// Target is the envelope's "target" field, where Defender for Endpoint
	// puts the tracking ID and Graph sometimes names the offending property.
	Target string

	// InnerCode is Graph's innerError code, when present.
	InnerCode string

	// TrackingID is the ID that Microsoft support requests: Graph's
	// innerError request-id, else Defender's target, else the request-id,
	// x-ms-request-id or client-request-id response header.
	TrackingID string

	// ClientRequestID is the client-request-id of the response, when present.
	ClientRequestID string

	// Challenge is the parsed WWW-Authenticate challenge of a 401, or nil.
	Challenge *Challenge

	// RetryAfter is the wait that the next attempt needed: the service's
	// Retry-After or quota window, or else the backoff. It is set in two
	// cases. The transport stopped because that wait was longer than the
	// maximum wait or than the time left before the deadline. Or it
	// stopped on a throttled response (a 429, or a 503 with Retry-After)
	// that it did not retry. It is 0 otherwise.
	RetryAfter time.Duration

	// Attempts is the number of requests sent, including the last.
	Attempts int

	// History lists the attempts before the last one, oldest first. A
	// non-empty History on a failed POST means that an earlier attempt may
	// have reached the service.
	History []Attempt

	// Snippet is the start of a body that is not a JSON error envelope,
	// such as an HTML gateway page, cut to a few hundred bytes.
	Snippet string

	// Err is the underlying cause: a network error, a context error, a
	// token refresh error, or nil.
	Err error

	reason    reason
	transient bool
}

// Attempt records one earlier attempt of a request.
type Attempt struct {
	StatusCode int           // 0 when no response arrived
	Code       string        // service error code or status name
	TrackingID string        // tracking ID of the response, when present
	Err        error         // network error when no response arrived
	Wait       time.Duration // wait before the next attempt
}

// reason is why the transport stopped, for Error's message and Is.
type reason int

const (
	reasonFailFast  reason = iota // a status that is not retried
	reasonExhausted               // every allowed retry was spent
	reasonWait                    // the required wait was too long
	reasonRefresh                 // 401 with no refresh, a failed refresh, or a second 401
	reasonCanceled                // the request's context ended
	reasonRequest                 // the request itself could not be sent again
	reasonBudget                  // the Transport's retry budget was empty
)

// Error returns a one-line description: the request, the status, the code,
// the message, the tracking ID, the attempt count and the cause.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("xdrretry: ")
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.URL)
	b.WriteString(": ")
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "%d %s", e.StatusCode, e.Code)
		if e.Message != "" {
			fmt.Fprintf(&b, ": %s", e.Message)
		}
	} else if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("request failed")
	}
	b.WriteString(" (")
	if e.TrackingID != "" {
		fmt.Fprintf(&b, "tracking ID %s; ", e.TrackingID)
	}
	if e.Attempts == 1 {
		b.WriteString("1 attempt")
	} else {
		fmt.Fprintf(&b, "%d attempts", e.Attempts)
	}
	switch e.reason {
	case reasonWait:
		fmt.Fprintf(&b, "; retry after %s", e.RetryAfter.Round(time.Millisecond))
	case reasonExhausted:
		b.WriteString("; retries exhausted")
	case reasonBudget:
		b.WriteString("; retry budget exhausted")
	}
	b.WriteByte(')')
	if e.StatusCode != 0 && e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return oneLine(b.String())
}

// oneLine replaces with spaces the characters of s that could break a
// line of text or change how it displays: control characters such as line
// breaks and terminal escapes, line and paragraph separators, and
// bidirectional controls. Invalid UTF-8 becomes U+FFFD. A server's error
// message then stays on one line of a log.
func oneLine(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, breaksLine) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if breaksLine(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// breaksLine reports whether oneLine replaces r.
func breaksLine(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r)
}

// Unwrap returns the underlying cause, or nil.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is one of the package's sentinel errors that
// matches e: a code sentinel such as [ErrNotFound] matches by Code, and
// [ErrRetriesExhausted], [ErrWaitTooLong], [ErrRefreshFailed] and
// [ErrRetryBudgetExhausted] match by the reason the transport stopped.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case codeError:
		return strings.EqualFold(e.Code, string(t))
	case reasonError:
		return e.reason == t.reason
	}
	return false
}

// Transient reports whether the last failure was of a kind that the
// transport retries (a throttle, a 5xx gateway or server error, a network
// error), so that the same request may succeed later. A cancelled request
// is not transient, and neither is one that could not be sent, such as a
// request whose body failed to read.
func (e *Error) Transient() bool {
	return e.transient && e.reason != reasonCanceled && e.reason != reasonRequest
}

// codeError is the type of the code sentinels. errors.Is compares it with
// Error.Code.
type codeError string

func (c codeError) Error() string { return "xdrretry: " + string(c) }

// reasonError is the type of the sentinels that name why the transport
// stopped.
type reasonError struct {
	reason reason
	text   string
}

func (r reasonError) Error() string { return "xdrretry: " + r.text }

// Sentinels for errors.Is that name why the transport stopped.
var (
	// ErrRetriesExhausted matches an error returned after every allowed
	// retry of a transient failure was spent.
	ErrRetriesExhausted error = reasonError{reasonExhausted, "retries exhausted"}

	// ErrWaitTooLong matches an error returned because the wait that the
	// service required was longer than the maximum wait or than the time
	// left before the request's deadline. Error.RetryAfter holds the wait.
	ErrWaitTooLong error = reasonError{reasonWait, "required wait too long"}

	// ErrRetryBudgetExhausted matches an error returned without a retry
	// because the Transport's retry budget was empty: too many requests
	// have failed recently.
	ErrRetryBudgetExhausted error = reasonError{reasonBudget, "retry budget exhausted"}

	// ErrRefreshFailed matches a 401 that the transport could not cure: no
	// refresh function, a refresh error, or a 401 again with the new token.
	ErrRefreshFailed error = reasonError{reasonRefresh, "token refresh did not cure 401"}
)

// Sentinels for errors.Is that match Error.Code, case-insensitively. The
// documented codes come from the Defender for Endpoint API's error-code
// table; the others are seen from Defender and Graph but not documented.
var (
	ErrBadRequest                 error = codeError("BadRequest")
	ErrODataError                 error = codeError("ODataError")
	ErrInvalidInput               error = codeError("InvalidInput")
	ErrInvalidRequestBody         error = codeError("InvalidRequestBody")
	ErrInvalidHashValue           error = codeError("InvalidHashValue")
	ErrInvalidDomainName          error = codeError("InvalidDomainName")
	ErrInvalidIPAddress           error = codeError("InvalidIpAddress")
	ErrInvalidURL                 error = codeError("InvalidUrl")
	ErrMaximumBatchSizeExceeded   error = codeError("MaximumBatchSizeExceeded")
	ErrMissingRequiredParameter   error = codeError("MissingRequiredParameter")
	ErrOsPlatformNotSupported     error = codeError("OsPlatformNotSupported")
	ErrClientVersionNotSupported  error = codeError("ClientVersionNotSupported")
	ErrUnauthorized               error = codeError("Unauthorized")
	ErrForbidden                  error = codeError("Forbidden")
	ErrDisabledFeature            error = codeError("DisabledFeature")
	ErrDisallowedOperation        error = codeError("DisallowedOperation")
	ErrNotFound                   error = codeError("NotFound")
	ErrResourceNotFound           error = codeError("ResourceNotFound")
	ErrInternalServerError        error = codeError("InternalServerError")
	ErrTooManyRequests            error = codeError("TooManyRequests")
	ErrActiveRequestAlreadyExists error = codeError("ActiveRequestAlreadyExists")
	ErrUnknownError               error = codeError("UnknownError")
	ErrInvalidAuthenticationToken error = codeError("InvalidAuthenticationToken")
	ErrBadGateway                 error = codeError("BadGateway")
	ErrServiceUnavailable         error = codeError("ServiceUnavailable")
	ErrGatewayTimeout             error = codeError("GatewayTimeout")
)

package xdrretry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// action is what the transport does after one attempt.
type action int

const (
	actionReturn  action = iota // hand the response to the caller
	actionRetry                 // transient failure: wait, then send again
	actionRefresh               // 401: refresh the token, then send again once
	actionFail                  // fail fast with the typed error
)

func (a action) String() string {
	switch a {
	case actionReturn:
		return "return"
	case actionRetry:
		return "retry"
	case actionRefresh:
		return "refresh"
	default:
		return "fail"
	}
}

// snippetLimit bounds Error.Snippet.
const snippetLimit = 256

// verdict is the classification of one response.
type verdict struct {
	action action
	info   errorInfo

	// retryAfter is the minimum wait from the Retry-After family of
	// headers; hasRetryAfter reports whether one could be parsed.
	retryAfter    time.Duration
	hasRetryAfter bool

	// window is the quota window named in a throttling message such as
	// "maximum allowed 45 per 00:01:00", or 0.
	window time.Duration
}

// throttles reports whether the response says a quota is spent: a 429, or
// a 503 with Retry-After.
func (v *verdict) throttles() bool {
	switch v.info.statusCode {
	case http.StatusTooManyRequests:
		return true
	case http.StatusServiceUnavailable:
		return v.hasRetryAfter
	}
	return false
}

// errorInfo is the content of an error response.
type errorInfo struct {
	statusCode      int
	code            string
	message         string
	target          string
	innerCode       string
	trackingID      string
	clientRequestID string
	challenge       *Challenge
	snippet         string
}

// classifyStatus maps an HTTP status to an action. The status alone decides
// the class; the body's code only names it.
func classifyStatus(status int) action {
	switch {
	case status < 400:
		return actionReturn
	case status == http.StatusUnauthorized:
		return actionRefresh
	case status == http.StatusTooManyRequests,
		status == http.StatusInternalServerError,
		status == http.StatusBadGateway,
		status == http.StatusServiceUnavailable,
		status == http.StatusGatewayTimeout:
		return actionRetry
	default:
		return actionFail
	}
}

// classifyResponse classifies an error response from its status, headers
// and the start of its body. now is the time used to turn an HTTP-date
// Retry-After into a wait.
func classifyResponse(status int, header http.Header, body []byte, now time.Time) verdict {
	v := verdict{action: classifyStatus(status), info: parseErrorInfo(status, header, body)}
	if v.action == actionRetry {
		v.retryAfter, v.hasRetryAfter = retryAfterFromHeader(header, now)
		if !v.hasRetryAfter {
			v.retryAfter, v.hasRetryAfter = retryAfterFromMessage(v.info.message)
		}
		v.window = quotaWindow(v.info.message)
	}
	return v
}

// parseErrorInfo reads the error envelope of a response. It accepts
// Defender's {"error":{"code","message","target"}}, Graph's variant with
// "innerError", a bare {"code","message"} object, a byte order mark before
// the JSON, and any non-JSON body, which becomes a snippet.
func parseErrorInfo(status int, header http.Header, body []byte) errorInfo {
	info := errorInfo{statusCode: status}
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))

	var env envelope
	if err := json.Unmarshal(body, &env); err == nil {
		e := env.object()
		info.code = e.Code.text()
		info.message = e.Message.text()
		info.target = e.Target
		if in := e.InnerError; in != nil {
			info.innerCode = in.Code.text()
			info.trackingID = in.RequestID
			info.clientRequestID = in.ClientRequestID
		} else if info.target != "" {
			// Defender for Endpoint documents "target" as the tracking ID.
			info.trackingID = info.target
		}
	} else if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 {
		info.snippet = snippet(trimmed)
	}

	info.code = normalizeCode(info.code, status)
	if info.trackingID == "" {
		info.trackingID = firstHeader(header, "request-id", "x-ms-request-id", "client-request-id")
	}
	if info.clientRequestID == "" {
		info.clientRequestID = header.Get("client-request-id")
	}
	if status == http.StatusUnauthorized {
		info.challenge = parseChallenge(header.Values("WWW-Authenticate"))
	}
	return info
}

// envelope is the union of the error body shapes that Defender and Graph
// send, plus the OAuth shape {"error":"invalid_token","error_description"}.
// encoding/json matches the keys case-insensitively, so "innererror" and
// "innerError" both fill InnerError.
type envelope struct {
	Error            json.RawMessage `json:"error"`
	ErrorDescription string          `json:"error_description"`
	errorObject
}

// object returns the error object: the "error" member when it is an
// object, else the top-level fields.
func (env *envelope) object() *errorObject {
	raw := bytes.TrimSpace(env.Error)
	if len(raw) == 0 {
		return &env.errorObject
	}
	var obj errorObject
	if raw[0] == '{' && json.Unmarshal(raw, &obj) == nil {
		return &obj
	}
	var code string
	if json.Unmarshal(raw, &code) == nil {
		obj.Code.s = code
		obj.Message.s = env.ErrorDescription
	}
	return &obj
}

type errorObject struct {
	Code       flexString  `json:"code"`
	Message    flexString  `json:"message"`
	Target     string      `json:"target"`
	InnerError *innerError `json:"innerError"`
}

type innerError struct {
	Code            flexString `json:"code"`
	RequestID       string     `json:"request-id"`
	ClientRequestID string     `json:"client-request-id"`
}

// flexString is a JSON value that is read as text: a string, a number, or
// an OData message object {"lang","value"}. Other values read as "".
type flexString struct{ s string }

func (f *flexString) UnmarshalJSON(data []byte) error {
	var s string
	if json.Unmarshal(data, &s) == nil {
		f.s = s
		return nil
	}
	var n json.Number
	if json.Unmarshal(data, &n) == nil {
		f.s = n.String()
		return nil
	}
	var obj struct {
		Value string `json:"value"`
	}
	if json.Unmarshal(data, &obj) == nil {
		f.s = obj.Value
	}
	return nil
}

func (f flexString) text() string { return f.s }

// normalizeCode returns the code to report. An empty code, or one that is
// an HTTP status number (Defender sends "429"), becomes the name of the
// response's status. The status decides, so a 500 whose body has "404"
// reads InternalServerError and does not match ErrNotFound.
func normalizeCode(code string, status int) string {
	code = strings.TrimSpace(code)
	if code == "" {
		return statusName(status)
	}
	if n, err := strconv.Atoi(code); err == nil && n >= 100 && n <= 599 {
		return statusName(status)
	}
	return code
}

// statusName returns the status text without spaces, in the style of the
// service's codes: 404 is "NotFound", 500 is "InternalServerError".
func statusName(status int) string {
	text := http.StatusText(status)
	if text == "" {
		return "Status" + strconv.Itoa(status)
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\'' {
			return -1
		}
		return r
	}, text)
}

func firstHeader(h http.Header, keys ...string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(h.Get(k)); v != "" {
			return v
		}
	}
	return ""
}

// snippet returns the start of b as one line of valid UTF-8 of at most
// snippetLimit bytes. Each run of bytes that are not UTF-8, as in a
// Latin-1 page, becomes one U+FFFD; control characters become spaces.
func snippet(b []byte) string {
	if len(b) > snippetLimit {
		b = b[:snippetLimit]
		// Drop the start of a rune that the cut split.
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i]
				}
				break
			}
		}
	}
	s := strings.Join(strings.Fields(oneLine(strings.ToValidUTF8(string(b), "\uFFFD"))), " ")
	if len(s) > snippetLimit {
		// Each replaced byte takes three.
		cut := snippetLimit
		for !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// classifyError maps a failure before any response to an action. Network
// failures are retried; the caller's context ending, certificate errors and
// errors that the transport cannot know to be transient are not.
func classifyError(ctx context.Context, err error) action {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return actionFail
	}

	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalidCert      x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
		recordHeader     tls.RecordHeaderError
	)
	if errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalidCert) || errors.As(err, &verification) ||
		errors.As(err, &recordHeader) {
		return actionFail
	}

	var (
		dnsErr *net.DNSError
		opErr  *net.OpError
		netErr net.Error
	)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH):
		return actionRetry
	case errors.As(err, &dnsErr), errors.As(err, &opErr):
		return actionRetry
	case errors.As(err, &netErr) && netErr.Timeout():
		return actionRetry
	}
	return actionFail
}

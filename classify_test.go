package xdrretry

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// defenderBody returns a Defender error envelope.
func defenderBody(code, message, target string) []byte {
	return fmt.Appendf(nil, `{"error":{"code":%q,"message":%q,"target":%q}}`, code, message, target)
}

func TestClassifyDefenderCodes(t *testing.T) {
	// Every code of the Defender for Endpoint API's error-code table, with
	// the status the table gives it, and codes seen but not documented.
	tests := []struct {
		status int
		code   string
		want   action
	}{
		{400, "BadRequest", actionFail},
		{400, "ODataError", actionFail},
		{400, "InvalidInput", actionFail},
		{400, "InvalidRequestBody", actionFail},
		{400, "InvalidHashValue", actionFail},
		{400, "InvalidDomainName", actionFail},
		{400, "InvalidIpAddress", actionFail},
		{400, "InvalidUrl", actionFail},
		{400, "MaximumBatchSizeExceeded", actionFail},
		{400, "MissingRequiredParameter", actionFail},
		{400, "OsPlatformNotSupported", actionFail},
		{400, "ClientVersionNotSupported", actionFail},
		{401, "Unauthorized", actionRefresh},
		{403, "Forbidden", actionFail},
		{403, "DisabledFeature", actionFail},
		{403, "DisallowedOperation", actionFail},
		{404, "NotFound", actionFail},
		{404, "ResourceNotFound", actionFail},
		{500, "InternalServerError", actionRetry},
		// Seen in the wild, not in the table.
		{429, "TooManyRequests", actionRetry},
		{400, "ActiveRequestAlreadyExists", actionFail},
		{500, "UnknownError", actionRetry},
		{504, "UnknownError", actionRetry},
		{401, "InvalidAuthenticationToken", actionRefresh},
		{502, "BadGateway", actionRetry},
		{503, "ServiceUnavailable", actionRetry},
		{504, "GatewayTimeout", actionRetry},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.code), func(t *testing.T) {
			body := defenderBody(tc.code, "message for "+tc.code, "00000000-0000-0000-0000-000000000001")
			v := classifyResponse(tc.status, http.Header{}, body, time.Now())
			if v.action != tc.want {
				t.Errorf("action = %v, want %v", v.action, tc.want)
			}
			if v.info.code != tc.code {
				t.Errorf("code = %q, want %q", v.info.code, tc.code)
			}
			if v.info.message != "message for "+tc.code {
				t.Errorf("message = %q", v.info.message)
			}
			if v.info.trackingID != "00000000-0000-0000-0000-000000000001" {
				t.Errorf("tracking ID = %q, want the target", v.info.trackingID)
			}
			e := &Error{Code: v.info.code}
			if sentinel := codeError(tc.code); !errors.Is(e, sentinel) || !slices.Contains(codeSentinels, error(sentinel)) {
				t.Errorf("no exported sentinel matches %s", tc.code)
			}
		})
	}
}

// codeSentinels lists the exported code sentinels.
var codeSentinels = []error{
	ErrBadRequest, ErrODataError, ErrInvalidInput, ErrInvalidRequestBody,
	ErrInvalidHashValue, ErrInvalidDomainName, ErrInvalidIPAddress,
	ErrInvalidURL, ErrMaximumBatchSizeExceeded, ErrMissingRequiredParameter,
	ErrOsPlatformNotSupported, ErrClientVersionNotSupported, ErrUnauthorized,
	ErrForbidden, ErrDisabledFeature, ErrDisallowedOperation, ErrNotFound,
	ErrResourceNotFound, ErrInternalServerError, ErrTooManyRequests,
	ErrActiveRequestAlreadyExists, ErrUnknownError,
	ErrInvalidAuthenticationToken, ErrBadGateway, ErrServiceUnavailable,
	ErrGatewayTimeout,
}

func TestClassifyStatusDecidesClass(t *testing.T) {
	// The same code under different statuses: the status wins.
	tests := []struct {
		status int
		code   string
		want   action
	}{
		{400, "InternalServerError", actionFail},
		{503, "BadRequest", actionRetry},
		{403, "Unauthorized", actionFail},
		{401, "Forbidden", actionRefresh},
		{200, "NotFound", actionReturn},
		{302, "", actionReturn},
		{405, "", actionFail},
		{408, "", actionFail},
		{409, "", actionFail},
		{501, "", actionFail},
		{505, "", actionFail},
		{502, "", actionRetry},
		{504, "", actionRetry},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.code), func(t *testing.T) {
			v := classifyResponse(tc.status, http.Header{}, defenderBody(tc.code, "", ""), time.Now())
			if v.action != tc.want {
				t.Errorf("action = %v, want %v", v.action, tc.want)
			}
		})
	}
}

func TestParseErrorInfo(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		code       string
		message    string
		innerCode  string
		trackingID string
		clientID   string
		snippet    string
	}{
		{
			name:   "digits code is TooManyRequests",
			status: 429,
			body:   `{"error":{"code":"429","message":"API calls quota exceeded! maximum allowed 45 per 00:01:00","target":"00000000-0000-0000-0000-000000000001"}}`,
			code:   "TooManyRequests", message: "API calls quota exceeded! maximum allowed 45 per 00:01:00",
			trackingID: "00000000-0000-0000-0000-000000000001",
		},
		{
			name:   "digits code of another status",
			status: 500,
			body:   `{"error":{"code":"404","message":"lost"}}`,
			code:   "InternalServerError", message: "lost",
		},
		{
			name:   "numeric JSON code",
			status: 429,
			body:   `{"error":{"code":429,"message":"slow down"}}`,
			code:   "TooManyRequests", message: "slow down",
		},
		{
			name:   "graph throttling with innerError",
			status: 429,
			header: http.Header{"Request-Id": {"header-id"}},
			body:   `{"error":{"code":"TooManyRequests","message":"Please retry again later.","innerError":{"code":"429","date":"2024-05-01T10:00:00","message":"Please retry after","request-id":"00000000-0000-0000-0000-00000000000a","status":"429"}}}`,
			code:   "TooManyRequests", message: "Please retry again later.", innerCode: "429",
			trackingID: "00000000-0000-0000-0000-00000000000a",
		},
		{
			name:   "graph innerError with client-request-id",
			status: 400,
			body:   `{"error":{"code":"BadRequest","message":"Query execution was preempted","innerError":{"date":"2024-05-01T10:00:00","request-id":"rid","client-request-id":"cid"}}}`,
			code:   "BadRequest", message: "Query execution was preempted",
			trackingID: "rid", clientID: "cid",
		},
		{
			name:   "graph 401 older innerError shape",
			status: 401,
			body:   `{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired.","innerError":{"request-id":"rid","date":"2019-01-01T00:00:00"}}}`,
			code:   "InvalidAuthenticationToken", message: "Access token has expired.", trackingID: "rid",
		},
		{
			name:   "lower-case innererror key",
			status: 500,
			body:   `{"error":{"code":"UnknownError","message":"","innererror":{"request-id":"rid"}}}`,
			code:   "UnknownError", trackingID: "rid",
		},
		{
			name:   "byte order mark before JSON",
			status: 500,
			header: http.Header{"Content-Type": {"application/json"}},
			body:   "\xef\xbb\xbf" + `{"error":{"code":"InternalServerError","message":"An error occurred","target":"t"}}`,
			code:   "InternalServerError", message: "An error occurred", trackingID: "t",
		},
		{
			name:       "HTML gateway page",
			status:     502,
			header:     http.Header{"X-Ms-Request-Id": {"ms-id"}},
			body:       "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>Bad Gateway</body></html>",
			code:       "BadGateway",
			snippet:    "<html> <head><title>502 Bad Gateway</title></head> <body>Bad Gateway</body></html>",
			trackingID: "ms-id",
		},
		{
			name:   "empty body names the status",
			status: 404,
			code:   "NotFound",
		},
		{
			name:       "header tracking ID order",
			status:     500,
			header:     http.Header{"Client-Request-Id": {"cid"}, "Request-Id": {"rid"}},
			body:       `{"error":{"code":"InternalServerError"}}`,
			code:       "InternalServerError",
			trackingID: "rid", clientID: "cid",
		},
		{
			name:       "client-request-id alone",
			status:     500,
			header:     http.Header{"Client-Request-Id": {"cid"}},
			code:       "InternalServerError",
			trackingID: "cid", clientID: "cid",
		},
		{
			name:   "OData message object",
			status: 400,
			body:   `{"error":{"code":"ODataError","message":{"lang":"en-US","value":"Filter parameter is invalid"}}}`,
			code:   "ODataError", message: "Filter parameter is invalid",
		},
		{
			name:   "bare code object",
			status: 400,
			body:   `{"code":"InvalidInput","message":"bad sha1"}`,
			code:   "InvalidInput", message: "bad sha1",
		},
		{
			name:   "OAuth error string",
			status: 401,
			body:   `{"error":"invalid_token","error_description":"token expired"}`,
			code:   "invalid_token", message: "token expired",
		},
		{
			name:    "truncated JSON",
			status:  500,
			body:    `{"error":{"code":"Internal`,
			code:    "InternalServerError",
			snippet: `{"error":{"code":"Internal`,
		},
		{
			name:   "JSON null",
			status: 503,
			body:   `null`,
			code:   "ServiceUnavailable",
		},
		{
			name:   "forbidden with empty role list",
			status: 403,
			body:   `{"error":{"code":"Forbidden","message":"Missing application roles. API required roles: Machine.Read.All,Machine.ReadWrite.All, application roles: .","target":"00000000-0000-0000-0000-000000000002"}}`,
			code:   "Forbidden", message: "Missing application roles. API required roles: Machine.Read.All,Machine.ReadWrite.All, application roles: .",
			trackingID: "00000000-0000-0000-0000-000000000002",
		},
		{
			name:   "unknown status",
			status: 599,
			code:   "Status599",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			header := tc.header
			if header == nil {
				header = http.Header{}
			}
			info := parseErrorInfo(tc.status, header, []byte(tc.body))
			checks := []struct{ field, got, want string }{
				{"code", info.code, tc.code},
				{"message", info.message, tc.message},
				{"inner code", info.innerCode, tc.innerCode},
				{"tracking ID", info.trackingID, tc.trackingID},
				{"client request ID", info.clientRequestID, tc.clientID},
				{"snippet", info.snippet, tc.snippet},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
				}
			}
		})
	}
}

func TestSnippetBounded(t *testing.T) {
	body := bytes.Repeat([]byte("a"), 10000)
	// A two-byte rune across the cut must not leave invalid UTF-8.
	copy(body[snippetLimit-1:], "é")
	got := snippet(body)
	if len(got) > snippetLimit {
		t.Errorf("snippet has %d bytes, limit %d", len(got), snippetLimit)
	}
	for i, r := range got {
		if r == '\uFFFD' {
			t.Fatalf("invalid UTF-8 at %d in %q", i, got)
		}
	}
}

func TestSnippetCleansBody(t *testing.T) {
	latin1 := append([]byte("<html><body>Caf\xe9 "), bytes.Repeat([]byte("x"), 570)...)
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"latin-1 page", latin1, "<html><body>Caf\uFFFD " + strings.Repeat("x", snippetLimit-len("<html><body>Caf\uFFFD "))},
		{"binary", []byte("\x00\x01\xff\xfe\x1b[31mred"), "\uFFFD [31mred"},
		{"line separator", []byte("a\u2028b\u202ec"), "a b c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := snippet(tc.body)
			if got != tc.want {
				t.Errorf("snippet = %q, want %q", got, tc.want)
			}
			if len(got) > snippetLimit {
				t.Errorf("snippet has %d bytes, limit %d", len(got), snippetLimit)
			}
		})
	}
}

func TestSnippetOfReplacedBytesBounded(t *testing.T) {
	// Invalid bytes apart become a three-byte U+FFFD each.
	got := snippet(bytes.Repeat([]byte{0xff, 'a'}, 1000))
	if len(got) > snippetLimit || !utf8.ValidString(got) {
		t.Errorf("snippet of %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

func TestClassifyError(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want action
	}{
		{"EOF", context.Background(), io.EOF, actionRetry},
		{"unexpected EOF", context.Background(), fmt.Errorf("read: %w", io.ErrUnexpectedEOF), actionRetry},
		{"reset", context.Background(), &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, actionRetry},
		{"refused", context.Background(), &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, actionRetry},
		{"DNS", context.Background(), &net.DNSError{Err: "no such host", Name: "api.security.microsoft.com", IsNotFound: true}, actionRetry},
		{"DNS timeout", context.Background(), &net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}, actionRetry},
		{"canceled context", canceled, &net.OpError{Op: "dial", Err: context.Canceled}, actionFail},
		{"deadline", context.Background(), context.DeadlineExceeded, actionFail},
		{"unknown authority", context.Background(), &net.OpError{Op: "remote error", Err: x509.UnknownAuthorityError{}}, actionFail},
		{"hostname", context.Background(), x509.HostnameError{Host: "x"}, actionFail},
		{"plain error", context.Background(), errors.New("unsupported protocol scheme"), actionFail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := classifyError(tc.ctx, tc.err); got != tc.want {
				t.Errorf("classifyError(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestStatusName(t *testing.T) {
	tests := map[int]string{
		400: "BadRequest",
		404: "NotFound",
		429: "TooManyRequests",
		500: "InternalServerError",
		502: "BadGateway",
		503: "ServiceUnavailable",
		504: "GatewayTimeout",
		413: "RequestEntityTooLarge",
		418: "Imateapot",
		207: "MultiStatus",
	}
	for status, want := range tests {
		if got := statusName(status); got != want {
			t.Errorf("statusName(%d) = %q, want %q", status, got, want)
		}
	}
}

func FuzzClassifyResponse(f *testing.F) {
	f.Add(429, `{"error":{"code":"429","message":"maximum allowed 45 per 00:01:00","target":"t"}}`, "1")
	f.Add(500, "\xef\xbb\xbf{\"error\":{\"code\":\"X\",\"innerError\":{\"request-id\":\"r\"}}}", "")
	f.Add(502, "<html>bad gateway</html>", "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(401, `{"error":"invalid_token"}`, "")
	f.Add(400, `{"error":{"code":{"nested":1},"message":[1,2]}}`, "")
	f.Add(404, `[]`, "x, y")
	f.Add(500, "\x00\xff\u2028\u202e<html>Caf\xe9", "")
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string) {
		if status < 100 || status > 999 {
			return
		}
		h := http.Header{"Retry-After": {retryAfter}}
		v := classifyResponse(status, h, []byte(body), time.Now())
		if v.action != classifyStatus(status) {
			t.Fatalf("action %v differs from the status class %v", v.action, classifyStatus(status))
		}
		if v.info.code == "" {
			t.Fatalf("empty code for status %d body %q", status, body)
		}
		if len(v.info.snippet) > snippetLimit {
			t.Fatalf("snippet of %d bytes", len(v.info.snippet))
		}
		if !utf8.ValidString(v.info.snippet) || strings.ContainsFunc(v.info.snippet, breaksLine) {
			t.Fatalf("snippet %q is not one line of valid UTF-8", v.info.snippet)
		}
		e := Error{StatusCode: status, Code: v.info.code, Message: v.info.message, TrackingID: v.info.trackingID}
		if msg := e.Error(); !utf8.ValidString(msg) || strings.ContainsFunc(msg, breaksLine) {
			t.Fatalf("Error() = %q is not one line of valid UTF-8", msg)
		}
		if v.retryAfter < 0 || v.window < 0 {
			t.Fatalf("negative wait: %v, %v", v.retryAfter, v.window)
		}
	})
}

package xdrretry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Limits for reading the body of an error response. The transport reads up
// to errorBodyLimit bytes to find the error code, then discards up to
// drainLimit more so that the connection can carry the next request. A
// longer body costs its connection instead of its length in memory or time.
const (
	errorBodyLimit = 64 << 10
	drainLimit     = 1 << 20
)

// errBodyNotReplayable is the cause when a retry needs a request body that
// cannot be produced again.
var errBodyNotReplayable = errors.New("request body cannot be sent again: set Request.GetBody")

// requestBody produces the request body for each attempt: the caller's
// body for the first, then a fresh copy from GetBody or from a buffer.
// Each attempt's body goes to the base transport, which closes it.
type requestBody struct {
	original io.ReadCloser
	getBody  func() (io.ReadCloser, error)
	calls    int
	sent     bool // original was handed to an attempt
}

// newRequestBody prepares req's body for replay. Without GetBody, the body
// is read into memory when replay may be needed, so that each attempt can
// send the same bytes.
func newRequestBody(req *http.Request, replay bool) (*requestBody, error) {
	b := &requestBody{original: req.Body, getBody: req.GetBody}
	if b.getBody != nil || !replay {
		return b, nil
	}
	buf, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	b.original = io.NopCloser(bytes.NewReader(buf))
	b.getBody = func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf)), nil
	}
	return b, nil
}

// next is the retryablehttp.ReaderFunc of the request. Request.SetBody calls
// it once to probe the body's length and closes what it returns, so that
// first call gets an empty body and the caller's body waits for the first
// attempt.
func (b *requestBody) next() (io.Reader, error) {
	b.calls++
	switch b.calls {
	case 1:
		return http.NoBody, nil
	case 2:
		b.sent = true
		return b.original, nil
	}
	if b.getBody == nil {
		return nil, errBodyNotReplayable
	}
	return b.getBody()
}

// close closes the caller's body if no attempt took it, as the
// http.RoundTripper contract requires on every path.
func (b *requestBody) close() {
	if b != nil && !b.sent && b.original != nil {
		b.original.Close()
	}
}

// readErrorBody reads the start of an error response's body, discards a
// bounded remainder and closes it. It leaves resp.Body as http.NoBody so
// that retryablehttp's own drain, which reads only 4 KiB, has nothing to
// do.
func readErrorBody(resp *http.Response) []byte {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
	if len(body) == errorBodyLimit && resp.ContentLength <= errorBodyLimit+drainLimit {
		io.CopyN(io.Discard, resp.Body, drainLimit)
	}
	resp.Body.Close()
	resp.Body = http.NoBody
	return body
}

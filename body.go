package xdrretry

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Limits for reading the body of an error response. The transport reads up
// to errorBodyLimit bytes to find the error code, then discards up to
// drainLimit more so that the connection can carry the next request. A
// longer body costs its connection instead of its length in memory or time.
//
// NOTE: An error envelope longer than errorBodyLimit is cut mid-JSON, so
// its code and message are lost: the status name is used, and the
// tracking ID comes only from the headers.
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

	// readErr is the first error other than io.EOF that reading an
	// attempt's body returned. The base transport reads on its own
	// goroutine, so it is guarded by mu.
	mu      sync.Mutex
	readErr error
}

// newRequestBody prepares req's body for replay. Without GetBody, the body
// is read into memory when replay may be needed, so that each attempt can
// send the same bytes. If ctx ends during that read, the body is closed to
// unblock it, as net/http does for a request in flight.
func newRequestBody(ctx context.Context, req *http.Request, replay bool) (*requestBody, error) {
	b := &requestBody{original: req.Body, getBody: req.GetBody}
	if b.getBody != nil || !replay {
		return b, nil
	}
	stop := context.AfterFunc(ctx, func() { req.Body.Close() })
	buf, err := io.ReadAll(req.Body)
	stop()
	req.Body.Close()
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
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
		return &trackedBody{ReadCloser: b.original, owner: b}, nil
	}
	if b.getBody == nil {
		return nil, errBodyNotReplayable
	}
	rc, err := b.getBody()
	if err != nil {
		b.mu.Lock()
		if b.readErr == nil {
			b.readErr = err
		}
		b.mu.Unlock()
		return nil, err
	}
	return &trackedBody{ReadCloser: rc, owner: b}, nil
}

// failed returns the error that reading the request body returned, if
// any. A failed attempt with such an error failed on the caller's side,
// not the network's.
func (b *requestBody) failed() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.readErr
}

// trackedBody records read errors of an attempt's body.
type trackedBody struct {
	io.ReadCloser
	owner *requestBody
}

func (t *trackedBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		t.owner.mu.Lock()
		if t.owner.readErr == nil {
			t.owner.readErr = err
		}
		t.owner.mu.Unlock()
	}
	return n, err
}

// close closes the caller's body if no attempt took it, as the
// http.RoundTripper contract requires on every path.
func (b *requestBody) close() {
	if b != nil && !b.sent && b.original != nil {
		b.original.Close()
	}
}

// peekErrorBody reads up to errorBodyLimit bytes of an error response's
// body and returns them as sent, leaving the rest unread.
func peekErrorBody(resp *http.Response) []byte {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
	return raw
}

// decodeErrorBody returns the text of a peeked body. A gzip body, which
// net/http leaves compressed when the caller set Accept-Encoding, is
// decompressed up to errorBodyLimit bytes. A body that is not valid gzip
// yields what decompressed before the error.
func decodeErrorBody(header http.Header, raw []byte) []byte {
	if !strings.EqualFold(strings.TrimSpace(header.Get("Content-Encoding")), "gzip") {
		return raw
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil
	}
	defer zr.Close()
	text, _ := io.ReadAll(io.LimitReader(zr, errorBodyLimit))
	return text
}

// discardBody drains a bounded remainder of a peeked body and closes it.
// It leaves resp.Body as http.NoBody so that retryablehttp's own drain,
// which reads only 4 KiB, has nothing to do.
func discardBody(resp *http.Response) {
	if resp.ContentLength <= errorBodyLimit+drainLimit {
		io.CopyN(io.Discard, resp.Body, drainLimit)
	}
	resp.Body.Close()
	resp.Body = http.NoBody
}

// errorBody is the body of an error response that is returned to the
// caller under WithErrorResponses: the peeked bytes, then the rest, with
// the typed error attached for ErrorFromResponse.
type errorBody struct {
	io.Reader
	body io.Closer
	err  *Error
}

func (e *errorBody) Close() error { return e.body.Close() }

// restoreBody puts the peeked bytes back in front of the rest of the body
// and attaches err.
func restoreBody(resp *http.Response, raw []byte, err *Error) {
	resp.Body = &errorBody{
		Reader: io.MultiReader(bytes.NewReader(raw), resp.Body),
		body:   resp.Body,
		err:    err,
	}
}

// ErrorFromResponse returns the typed error of a failed response that a
// Transport configured with WithErrorResponses returned, or nil for any
// other response. It reads nothing from the body.
func ErrorFromResponse(resp *http.Response) *Error {
	if resp == nil {
		return nil
	}
	if eb, ok := resp.Body.(*errorBody); ok {
		return eb.err
	}
	return nil
}

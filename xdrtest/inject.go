package xdrtest

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// maxDrain is how much of the request body Drop and Reset read before they
// close the connection. When a socket with unread received data is closed,
// the kernel sends a reset, which would turn a Drop into a Reset.
const maxDrain = 1 << 20

// padding is the shared source of LargeBody's padding bytes, so a large body
// costs no allocation of its size.
var padding = bytes.Repeat([]byte("x"), 32<<10)

// serveFault serves a fault and records it before the client can see it.
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, f *Fault, rec *Record) {
	if f.Delay > 0 && !s.wait(r, f.Delay) {
		s.record(rec)
		// Close the connection without a response. Returning normally
		// would send an empty 200.
		panic(http.ErrAbortHandler)
	}

	switch {
	case f.Drop || f.Reset:
		rec.Dropped = true
		s.record(rec)
		closeConnection(w, r, f.Reset)
	case f.shape == shapePadded:
		s.servePadded(w, f, rec)
	default:
		resp := faultResponse(r, f)
		rec.Status = resp.status
		rec.Code = resp.code
		rec.TrackingID = resp.trackingID
		s.record(rec)
		if f.stall {
			s.serveStalled(w, r, &resp, f.stallAfter)
			return
		}
		resp.write(w)
	}
}

// serveStalled sends resp's headers and the first n bytes of its body, then
// waits until the client cancels the request or the server closes, and
// closes the connection without the rest.
func (s *Server) serveStalled(w http.ResponseWriter, r *http.Request, resp *response, n int) {
	h := w.Header()
	for key, values := range resp.header {
		h[key] = values
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	w.Write(resp.body[:min(n, len(resp.body))])
	http.NewResponseController(w).Flush()
	select {
	case <-r.Context().Done():
	case <-s.done:
	}
	panic(http.ErrAbortHandler)
}

// wait waits for d and reports whether it passed before the client canceled
// the request or the server closed.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		return false
	}
}

// closeConnection hijacks the request's connection and closes it without a
// response. With reset, it sets SO_LINGER to 0 first, so the kernel sends a
// TCP RST instead of a FIN. On a connection that cannot be hijacked, such as
// HTTP/2, it aborts the handler, which resets the stream.
func closeConnection(w http.ResponseWriter, r *http.Request, reset bool) {
	io.CopyN(io.Discard, r.Body, maxDrain)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if reset {
		// Close the TCP connection under a TLS one directly, because
		// tls.Conn.Close first sends a close_notify alert, which the client
		// could read as a clean end before the reset arrives.
		if tc, ok := conn.(*tls.Conn); ok {
			conn = tc.NetConn()
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			tcp.SetLinger(0)
		}
	}
	conn.Close()
}

// servePadded streams a Defender error envelope whose message is padded to
// make the body f.size bytes long.
func (s *Server) servePadded(w http.ResponseWriter, f *Fault, rec *Record) {
	id := newUUID()
	code, _ := json.Marshal(f.code)
	prefix := `{"error":{"code":` + string(code) + `,"message":"`
	suffix := `","target":"` + id + `"}}`
	padLen := max(f.size-len(prefix)-len(suffix), 0)

	rec.Status = f.status()
	rec.Code = f.code
	rec.TrackingID = id
	s.record(rec)

	h := w.Header()
	h.Set("Content-Type", contentTypeJSON)
	h.Set("Content-Length", strconv.Itoa(len(prefix)+padLen+len(suffix)))
	for key, values := range f.Header {
		h[key] = append([]string(nil), values...)
	}
	w.WriteHeader(f.status())

	// A client that stops reading would block Write, and so Close, forever.
	// Close ends such a stream by setting a write deadline in the past.
	stopWatch := s.watchClose(http.NewResponseController(w))
	defer stopWatch()

	if _, err := io.WriteString(w, prefix); err != nil {
		return
	}
	for padLen > 0 {
		n := min(padLen, len(padding))
		if _, err := w.Write(padding[:n]); err != nil {
			return
		}
		padLen -= n
	}
	io.WriteString(w, suffix)
}

// watchClose starts a goroutine that makes rc's writes fail once the server
// closes. The returned function stops the goroutine and waits for it, so
// that rc is not used after the handler returns.
func (s *Server) watchClose(rc *http.ResponseController) (stop func()) {
	finished := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-s.done:
			rc.SetWriteDeadline(time.Unix(1, 0))
		case <-finished:
		}
	}()
	return func() {
		close(finished)
		<-stopped
	}
}

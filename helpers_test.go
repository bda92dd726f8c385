package xdrretry

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// step writes one scripted response.
type step func(w http.ResponseWriter, r *http.Request)

// reply returns a step that writes status, headers (as "Key: value"
// strings) and body.
func reply(status int, body string, headers ...string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, h := range headers {
			k, v, _ := strings.Cut(h, ":")
			w.Header().Add(k, strings.TrimSpace(v))
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// hangUp returns a step that closes the connection without a response.
func hangUp() step {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
}

// received is what the server saw of one request.
type received struct {
	method        string
	path          string
	body          string
	contentLength int64
	auth          string
	host          string
	header        http.Header
}

// scriptServer is a loopback server that responds with its steps in order,
// then with 200 "ok" (or with fallback, when set).
type scriptServer struct {
	*httptest.Server
	mu       sync.Mutex
	steps    []step
	fallback step
	seen     []received
	conns    atomic.Int32
}

func newScriptServer(t *testing.T, steps ...step) *scriptServer {
	t.Helper()
	s := &scriptServer{steps: steps}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *scriptServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.seen = append(s.seen, received{
		method: r.Method, path: r.URL.Path, body: string(body),
		contentLength: r.ContentLength, auth: r.Header.Get("Authorization"), host: r.Host,
		header: r.Header.Clone(),
	})
	next := s.fallback
	if len(s.steps) > 0 {
		next, s.steps = s.steps[0], s.steps[1:]
	}
	s.mu.Unlock()
	if next == nil {
		next = reply(http.StatusOK, "ok")
	}
	next(w, r)
}

func (s *scriptServer) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.seen...)
}

// fakeClock is a Transport's clock in tests: sleeping records the wait and
// moves the clock forward at once.
type fakeClock struct {
	mu      sync.Mutex
	current time.Time
	waits   []time.Duration
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

func (f *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.waits = append(f.waits, d)
	f.current = f.current.Add(d)
	f.mu.Unlock()
	return ctx.Err()
}

func (f *fakeClock) all() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.waits...)
}

// newFakeClockTransport returns a Transport over the default transport
// whose clock starts at now and whose waits are recorded, not slept.
func newFakeClockTransport(now time.Time, opts ...Option) (*Transport, *fakeClock) {
	t := New(nil, opts...)
	clock := &fakeClock{current: now}
	t.sleep = clock.sleep
	t.now = clock.now
	return t, clock
}

// closeCounter is a request body that counts its Close calls.
type closeCounter struct {
	io.Reader
	closes atomic.Int32
}

func (c *closeCounter) Close() error {
	c.closes.Add(1)
	return nil
}

// idleCounter wraps a real transport and counts CloseIdleConnections.
type idleCounter struct {
	*http.Transport
	closes atomic.Int32
}

func (c *idleCounter) CloseIdleConnections() {
	c.closes.Add(1)
	c.Transport.CloseIdleConnections()
}

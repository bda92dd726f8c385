package xdrtest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a fake Defender API on a loopback httptest.Server.
type Server struct {
	// URL is the base URL, such as http://127.0.0.1:PORT, with no trailing
	// slash. It is empty until the server starts.
	URL string

	ts      *httptest.Server
	handler http.Handler
	conns   atomic.Int64

	done      chan struct{} // closed by Close to end delays and streams
	closeOnce sync.Once

	// mu guards the fields below.
	mu           sync.Mutex
	authRequired bool
	tokens       map[string]time.Time // token to expiry
	scripts      []*script
	faultFunc    func(*http.Request) (Fault, bool)
	records      []Record
	actions      []*MachineAction
}

// script is the fault queue of one route.
type script struct {
	key   string
	route route
	queue []Fault
}

// Record describes one request that the server handled.
type Record struct {
	Method string
	Path   string // URL path, without the query
	Query  string // raw query, without "?"

	// Status is the response status. It is 0 when no response was sent: for
	// a Drop or Reset fault, or when a Delay ended because the client
	// canceled the request or the server closed.
	Status int

	// Code is the error code in the response body, such as "NotFound". It is
	// "" when the body has none: a success, an HTML page or a raw fault.
	Code string

	// TrackingID is the tracking ID of an error response: Defender's
	// "target", Graph's request-id, or the X-Azure-Ref of an HTML page.
	TrackingID string

	// Token is the request's bearer token, or "".
	Token string

	Fault   bool      // the response came from a fault
	Dropped bool      // a Drop or Reset fault closed the connection
	Time    time.Time // when the request arrived
}

// NewServer starts and returns a fake Defender API on 127.0.0.1 (or ::1 when
// IPv4 loopback is unavailable). It requires a bearer token from
// [Server.IssueToken] until [Server.SetAuth] turns that off. The caller should
// call Close when finished.
func NewServer() *Server {
	s := NewUnstartedServer()
	s.Start()
	return s
}

// NewUnstartedServer returns a server that listens on loopback but does not
// serve until [Server.Start] or [Server.StartTLS]. The caller should call
// Close when finished.
//
// Unlike httptest.NewUnstartedServer, it ignores the -httptest.serve flag,
// so the server never listens on an address other than loopback.
func NewUnstartedServer() *Server {
	s := &Server{
		done:         make(chan struct{}),
		authRequired: true,
		tokens:       make(map[string]time.Time),
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	s.ts = &httptest.Server{
		Listener: newLoopbackListener(),
		Config: &http.Server{
			Handler: s.handler,
			ConnState: func(_ net.Conn, state http.ConnState) {
				if state == http.StateNew {
					s.conns.Add(1)
				}
			},
		},
	}
	return s
}

// newLoopbackListener listens on a free port of 127.0.0.1, else of ::1.
func newLoopbackListener() net.Listener {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err == nil {
		return l
	}
	l, err6 := net.Listen("tcp6", "[::1]:0")
	if err6 != nil {
		panic(fmt.Sprintf("xdrtest: failed to listen on loopback: %v; %v", err, err6))
	}
	return l
}

// Start starts a server from [NewUnstartedServer] over plain HTTP/1.1.
func (s *Server) Start() {
	s.ts.Start()
	s.URL = s.ts.URL
}

// StartTLS starts a server from [NewUnstartedServer] over HTTPS with
// httptest's self-signed certificate, which [Server.Client] trusts. It
// offers only HTTP/1.1, so that Drop and Reset faults can hijack the
// connection.
func (s *Server) StartTLS() {
	s.ts.StartTLS()
	s.URL = s.ts.URL
}

// Close ends pending fault delays and large body streams, shuts the server
// down and waits for the handlers to return. It may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.ts.Close()
}

// Handler returns the API handler, for mounting on another server. Requests
// that it handles are recorded as usual, but [Server.Connections] counts only
// the connections of s itself.
func (s *Server) Handler() http.Handler {
	return s.handler
}

// Client returns httptest's client for the server: a plain http.Client with
// its own transport and no retries. It trusts the certificate after
// [Server.StartTLS].
func (s *Server) Client() *http.Client {
	return s.ts.Client()
}

// Script queues faults for the requests that match route. Each matching
// request consumes the next fault, and when the queue is empty the route
// behaves normally again. Script appends to the queue of a route that
// already has one.
//
// route is "METHOD /path" or "/path" for any method. A path segment in
// braces, such as "{id}", matches any one segment, for example
// "POST /api/machines/{id}/isolate". Literal segments and methods match
// case-insensitively, and the request's query string is ignored. When several
// routes with queued faults match a request, the route scripted first wins.
//
// Script panics on an invalid route, and on a fault whose Status is neither 0
// nor a final status in the range 200-999.
func (s *Server) Script(route string, faults ...Fault) {
	rt := mustParseRoute(route)
	key := rt.key()
	for i := range faults {
		if st := faults[i].Status; st != 0 && (st < 200 || st > 999) {
			panic(fmt.Sprintf("xdrtest: invalid Status %d in fault %d for route %q: want 200-999, or 0 for 500", st, i, route))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sc := range s.scripts {
		if sc.key == key {
			sc.queue = append(sc.queue, faults...)
			return
		}
	}
	s.scripts = append(s.scripts, &script{key: key, route: rt, queue: append([]Fault(nil), faults...)})
}

// SetFaultFunc installs fn, which the server calls for every request that no
// scripted fault matched. When fn returns a fault and true, the server
// injects the fault. The server calls fn from many goroutines at once, so fn
// must be safe for concurrent use. It holds no lock while it calls fn, so fn
// may call the server's methods. A nil fn removes the function.
func (s *Server) SetFaultFunc(fn func(r *http.Request) (Fault, bool)) {
	s.mu.Lock()
	s.faultFunc = fn
	s.mu.Unlock()
}

// nextFault returns the fault to inject into a request, if any: the next
// scripted fault of the first matching route, else the fault function's.
func (s *Server) nextFault(r *http.Request, segments []string) (Fault, bool) {
	s.mu.Lock()
	for _, sc := range s.scripts {
		if len(sc.queue) > 0 && sc.route.match(r.Method, segments) {
			f := sc.queue[0]
			sc.queue[0] = Fault{}
			sc.queue = sc.queue[1:]
			s.mu.Unlock()
			return f, true
		}
	}
	fn := s.faultFunc
	s.mu.Unlock()

	if fn == nil {
		return Fault{}, false
	}
	return fn(r)
}

// Requests returns a copy of the records of every request handled so far,
// in the order in which the server decided their responses.
func (s *Server) Requests() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// Count returns the number of recorded requests that match route, which has
// the syntax of [Server.Script]. Count panics on an invalid route.
func (s *Server) Count(route string) int {
	rt := mustParseRoute(route)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := range s.records {
		if rt.match(s.records[i].Method, splitPath(s.records[i].Path)) {
			n++
		}
	}
	return n
}

// ResetLog clears the records that [Server.Requests] and [Server.Count]
// read. It does not reset [Server.Connections], the fault queues or the
// machine actions. The server keeps every record until ResetLog, so a
// long-running server should call it now and then to bound its memory.
func (s *Server) ResetLog() {
	s.mu.Lock()
	s.records = nil
	s.mu.Unlock()
}

// Connections returns the number of TCP connections that the server has
// accepted so far. Two sequential requests over one keep-alive connection
// count once.
func (s *Server) Connections() int {
	return int(s.conns.Load())
}

func (s *Server) record(rec *Record) {
	s.mu.Lock()
	s.records = append(s.records, *rec)
	s.mu.Unlock()
}

// serveHTTP handles a request in this order: a scripted fault, then a fault
// from the fault function, then authentication, then the resource. Faults
// come first because they model the gateway or the service failing before
// the service checks the token.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Record{
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.RawQuery,
		Token:  bearerToken(r),
		Time:   time.Now(),
	}
	segments := splitPath(r.URL.Path)

	if f, ok := s.nextFault(r, segments); ok {
		rec.Fault = true
		s.serveFault(w, r, &f, &rec)
		return
	}

	resp, rejected := s.checkAuth(rec.Token)
	if !rejected {
		resp = s.serveResource(r, segments)
	}
	rec.Status = resp.status
	rec.Code = resp.code
	rec.TrackingID = resp.trackingID
	s.record(&rec)
	resp.write(w)
}

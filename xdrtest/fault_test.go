package xdrtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdrretry/xdrretry/xdrtest"
)

func TestScriptConsumesFaultsInOrder(t *testing.T) {
	srv, token := start(t)
	srv.Script("GET /api/machines",
		xdrtest.ErrorCode(500, "InternalServerError", "first"),
		xdrtest.Throttle("2"),
		xdrtest.HTML(502),
	)

	wantStatus := []int{500, 429, 502, 200, 200}
	for i, want := range wantStatus {
		r := send(t, srv.Client(), "GET", srv.URL+"/api/machines", token, "")
		if r.status != want {
			t.Errorf("request %d: status = %d, want %d", i, r.status, want)
		}
	}
	for i, rec := range srv.Requests() {
		if wantFault := i < 3; rec.Fault != wantFault {
			t.Errorf("record %d: Fault = %v, want %v", i, rec.Fault, wantFault)
		}
	}
}

func TestScriptRouteMatching(t *testing.T) {
	const id = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"
	tests := []struct {
		name        string
		route       string
		method      string
		path        string
		wantFaulted bool
	}{
		{"exact", "GET /api/machines", "GET", "/api/machines", true},
		{"any method", "/api/machines", "POST", "/api/machines", true},
		{"other method", "POST /api/machines", "GET", "/api/machines", false},
		{"lower-case method", "get /api/machines", "GET", "/api/machines", true},
		{"query ignored", "GET /api/machines", "GET", "/api/machines?$top=1&$skip=2", true},
		{"placeholder", "POST /api/machines/{id}/isolate", "POST", "/api/machines/" + id + "/isolate", true},
		{"named placeholder", "POST /api/machines/{machineId}/isolate", "POST", "/api/machines/" + id + "/isolate", true},
		{"placeholder other action", "POST /api/machines/{id}/isolate", "POST", "/api/machines/" + id + "/offboard", false},
		{"placeholder needs a segment", "GET /api/machines/{id}", "GET", "/api/machines", false},
		{"placeholder rejects empty segment", "GET /api/machines/{id}", "GET", "/api/machines/", false},
		{"placeholder is one segment", "GET /api/machines/{id}", "GET", "/api/machines/" + id + "/isolate", false},
		{"literal id", "GET /api/machines/" + id, "GET", "/api/machines/" + id, true},
		{"other literal id", "GET /api/machines/" + id, "GET", "/api/machines/abc", false},
		{"case-insensitive path", "GET /api/machines", "GET", "/API/Machines", true},
		{"prefix only", "GET /api", "GET", "/api/machines", false},
		{"longer route", "GET /api/machines/{id}/isolate", "GET", "/api/machines/" + id, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, token := start(t)
			srv.Script(tt.route, xdrtest.ErrorCode(418, "Scripted", "scripted fault"))
			r := send(t, srv.Client(), tt.method, srv.URL+tt.path, token, "")
			if faulted := r.status == 418; faulted != tt.wantFaulted {
				t.Errorf("%s %s with route %q: faulted = %v, want %v (status %d)",
					tt.method, tt.path, tt.route, faulted, tt.wantFaulted, r.status)
			}
			if got, want := srv.Count(tt.route), btoi(tt.wantFaulted); got != want {
				t.Errorf("Count(%q) = %d, want %d", tt.route, got, want)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestScriptQueues(t *testing.T) {
	srv, token := start(t)
	get := func() int {
		return send(t, srv.Client(), "GET", srv.URL+"/api/machines/x", token, "").status
	}

	srv.Script("GET /api/machines/{id}", xdrtest.ErrorCode(500, "A", "a"))
	srv.Script("/api/machines/{other}", xdrtest.ErrorCode(503, "B", "b"))
	// The same route in another spelling appends to the first queue.
	srv.Script("get /API/machines/{x}", xdrtest.ErrorCode(502, "C", "c"))

	// The route scripted first wins while its queue lasts.
	want := []int{500, 502, 503, 404}
	for i, w := range want {
		if got := get(); got != w {
			t.Errorf("request %d: status = %d, want %d", i, got, w)
		}
	}

	srv.Script("/api/machines/{id}")
	if got := get(); got != 404 {
		t.Errorf("after Script with no faults: status = %d, want 404", got)
	}
}

func TestScriptPanicsOnInvalidRoute(t *testing.T) {
	srv, _ := start(t)
	for _, route := range []string{"", "GET", "machines", "GET machines", " /a?b=c", "/a#frag"} {
		t.Run(route, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Script(%q) did not panic", route)
				}
			}()
			srv.Script(route, xdrtest.Drop())
		})
	}
}

func TestScriptPanicsOnInvalidStatus(t *testing.T) {
	srv, _ := start(t)
	for _, status := range []int{-1, 42, 103, 1000} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Script with Status %d did not panic", status)
				}
			}()
			srv.Script("/api/alerts", xdrtest.ErrorCode(status, "X", "x"))
		})
	}
}

func TestSetFaultFunc(t *testing.T) {
	srv, token := start(t)
	calls := 0
	srv.SetFaultFunc(func(r *http.Request) (xdrtest.Fault, bool) {
		calls++
		if r.URL.Path == "/api/alerts" {
			return xdrtest.ErrorCode(503, "ServiceUnavailable", "from func"), true
		}
		return xdrtest.Fault{}, false
	})
	srv.Script("/api/alerts", xdrtest.ErrorCode(500, "InternalServerError", "scripted"))

	statuses := []int{}
	for _, path := range []string{"/api/alerts", "/api/alerts", "/api/machines"} {
		statuses = append(statuses, send(t, srv.Client(), "GET", srv.URL+path, token, "").status)
	}
	if want := []int{500, 503, 200}; !equalInts(statuses, want) {
		t.Errorf("statuses = %v, want %v", statuses, want)
	}
	if calls != 2 {
		t.Errorf("fault function calls = %d, want 2 (not for the scripted request)", calls)
	}
	if recs := srv.Requests(); recs[2].Fault {
		t.Error("record of a request that the function passed has Fault = true")
	}

	srv.SetFaultFunc(nil)
	if got := send(t, srv.Client(), "GET", srv.URL+"/api/alerts", token, "").status; got != 200 {
		t.Errorf("status after SetFaultFunc(nil) = %d, want 200", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type graphEnvelope struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			Date            string `json:"date"`
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

func TestFaultConstructors(t *testing.T) {
	tests := []struct {
		name  string
		fault xdrtest.Fault
		check func(t *testing.T, r reply, rec xdrtest.Record)
	}{
		{"ErrorCode", xdrtest.ErrorCode(400, "InvalidInput", "The input is invalid"),
			func(t *testing.T, r reply, rec xdrtest.Record) {
				env := checkError(t, r, 400, "InvalidInput")
				if env.Error.Message != "The input is invalid" {
					t.Errorf("message = %q", env.Error.Message)
				}
				if rec.TrackingID != env.Error.Target {
					t.Errorf("record TrackingID = %q, want the target %q", rec.TrackingID, env.Error.Target)
				}
				if rec.Code != "InvalidInput" {
					t.Errorf("record Code = %q, want InvalidInput", rec.Code)
				}
			}},
		{"GraphError", xdrtest.GraphError(503, "serviceNotAvailable", "Service is unavailable"),
			func(t *testing.T, r reply, rec xdrtest.Record) {
				if r.status != 503 {
					t.Errorf("status = %d, want 503", r.status)
				}
				env := decodeJSON[graphEnvelope](t, r.body)
				in := env.Error.InnerError
				if env.Error.Code != "serviceNotAvailable" {
					t.Errorf("code = %q, want serviceNotAvailable", env.Error.Code)
				}
				if env.Error.Message != "Service is unavailable" {
					t.Errorf("message = %q, want %q", env.Error.Message, "Service is unavailable")
				}
				if !uuidV4.MatchString(in.RequestID) {
					t.Errorf("innerError request-id = %q, want a UUID", in.RequestID)
				}
				if !uuidV4.MatchString(in.ClientRequestID) {
					t.Errorf("innerError client-request-id = %q, want a UUID", in.ClientRequestID)
				}
				if in.RequestID == in.ClientRequestID {
					t.Error("request-id equals client-request-id, want two fresh IDs")
				}
				if _, err := time.Parse("2006-01-02T15:04:05", in.Date); err != nil {
					t.Errorf("innerError date %q: %v", in.Date, err)
				}
				if got := r.header.Get("request-id"); got != in.RequestID {
					t.Errorf("request-id header = %q, want %q", got, in.RequestID)
				}
				if got := r.header.Get("client-request-id"); got != in.ClientRequestID {
					t.Errorf("client-request-id header = %q, want %q", got, in.ClientRequestID)
				}
				if rec.TrackingID != in.RequestID {
					t.Errorf("record TrackingID = %q, want the request-id %q", rec.TrackingID, in.RequestID)
				}
			}},
		{"Throttle with Retry-After", xdrtest.Throttle("7"),
			func(t *testing.T, r reply, rec xdrtest.Record) {
				env := checkError(t, r, 429, "TooManyRequests")
				if !strings.Contains(env.Error.Message, "quota") {
					t.Errorf("message = %q, want a quota message", env.Error.Message)
				}
				if got := r.header.Get("Retry-After"); got != "7" {
					t.Errorf("Retry-After = %q, want 7", got)
				}
			}},
		{"Throttle with HTTP-date", xdrtest.Throttle("Wed, 21 Oct 2015 07:28:00 GMT"),
			func(t *testing.T, r reply, rec xdrtest.Record) {
				checkError(t, r, 429, "TooManyRequests")
				if got := r.header.Get("Retry-After"); got != "Wed, 21 Oct 2015 07:28:00 GMT" {
					t.Errorf("Retry-After = %q", got)
				}
			}},
		{"Throttle without Retry-After", xdrtest.Throttle(""),
			func(t *testing.T, r reply, rec xdrtest.Record) {
				checkError(t, r, 429, "TooManyRequests")
				if got, ok := r.header["Retry-After"]; ok {
					t.Errorf("Retry-After = %q, want no header", got)
				}
			}},
		{"HTML", xdrtest.HTML(502),
			func(t *testing.T, r reply, rec xdrtest.Record) {
				if r.status != 502 {
					t.Errorf("status = %d, want 502", r.status)
				}
				if ct := r.header.Get("Content-Type"); ct != "text/html" {
					t.Errorf("Content-Type = %q, want text/html", ct)
				}
				body := string(r.body)
				if !strings.HasPrefix(body, "<!DOCTYPE html>") {
					t.Errorf("body does not start with <!DOCTYPE html>:\n%s", body)
				}
				if !strings.Contains(body, "502 Bad Gateway") {
					t.Errorf("body does not name 502 Bad Gateway:\n%s", body)
				}
				if json.Valid(r.body) {
					t.Error("body is valid JSON, want HTML")
				}
				ref := r.header.Get("X-Azure-Ref")
				if !uuidV4.MatchString(ref) {
					t.Errorf("X-Azure-Ref = %q, want a UUID", ref)
				}
				if !strings.Contains(body, ref) {
					t.Errorf("page does not contain the X-Azure-Ref %q", ref)
				}
				if rec.TrackingID != ref {
					t.Errorf("record TrackingID = %q, want the X-Azure-Ref %q", rec.TrackingID, ref)
				}
				if rec.Code != "" {
					t.Errorf("record Code = %q, want empty", rec.Code)
				}
			}},
		{"Raw", xdrtest.Raw(503, http.Header{"X-Custom": {"a", "b"}, "Content-Type": {"text/plain"}}, "upstream busy"),
			func(t *testing.T, r reply, rec xdrtest.Record) {
				if r.status != 503 {
					t.Errorf("status = %d, want 503", r.status)
				}
				if string(r.body) != "upstream busy" {
					t.Errorf("body = %q, want %q", r.body, "upstream busy")
				}
				if got := r.header.Values("X-Custom"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
					t.Errorf("X-Custom = %q, want [a b]", got)
				}
				if ct := r.header.Get("Content-Type"); ct != "text/plain" {
					t.Errorf("Content-Type = %q, want text/plain", ct)
				}
				if rec.TrackingID != "" {
					t.Errorf("record TrackingID = %q, want empty", rec.TrackingID)
				}
				if rec.Code != "" {
					t.Errorf("record Code = %q, want empty", rec.Code)
				}
			}},
		{"Fault literal", xdrtest.Fault{Body: "plain"},
			func(t *testing.T, r reply, rec xdrtest.Record) {
				if r.status != 500 {
					t.Errorf("status = %d, want the default 500", r.status)
				}
				if string(r.body) != "plain" {
					t.Errorf("body = %q, want %q", r.body, "plain")
				}
			}},
		{"WithHeader", xdrtest.ErrorCode(503, "ServiceUnavailable", "x").WithHeader("Retry-After", "3").WithHeader("Content-Type", "application/json"),
			func(t *testing.T, r reply, rec xdrtest.Record) {
				checkError(t, r, 503, "ServiceUnavailable")
				if got := r.header.Get("Retry-After"); got != "3" {
					t.Errorf("Retry-After = %q, want 3", got)
				}
				if got := r.header.Get("Content-Type"); got != "application/json" {
					t.Errorf("Content-Type = %q, want the overriding application/json", got)
				}
			}},
		{"LargeBody small", xdrtest.LargeBody(500, 4096),
			func(t *testing.T, r reply, rec xdrtest.Record) {
				env := checkError(t, r, 500, "InternalServerError")
				if len(r.body) != 4096 {
					t.Errorf("body length = %d, want 4096", len(r.body))
				}
				if rec.TrackingID != env.Error.Target {
					t.Errorf("record TrackingID = %q, want %q", rec.TrackingID, env.Error.Target)
				}
			}},
		{"LargeBody below envelope size", xdrtest.LargeBody(503, 10),
			func(t *testing.T, r reply, rec xdrtest.Record) {
				// The body is the envelope with an empty message.
				env := decodeEnvelope(t, r.body)
				if r.status != 503 {
					t.Errorf("status = %d, want 503", r.status)
				}
				if env.Error.Code != "ServiceUnavailable" {
					t.Errorf("code = %q, want ServiceUnavailable", env.Error.Code)
				}
				if env.Error.Message != "" {
					t.Errorf("message = %q, want empty", env.Error.Message)
				}
			}},
		{"WithDelay", xdrtest.ErrorCode(504, "GatewayTimeout", "slow").WithDelay(time.Millisecond),
			func(t *testing.T, r reply, rec xdrtest.Record) {
				checkError(t, r, 504, "GatewayTimeout")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, token := start(t)
			srv.Script("/api/alerts", tt.fault)
			r := send(t, srv.Client(), "GET", srv.URL+"/api/alerts", token, "")
			if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(r.body)) {
				t.Errorf("Content-Length = %q, want %d", got, len(r.body))
			}
			recs := srv.Requests()
			if len(recs) != 1 {
				t.Fatalf("len(Requests()) = %d, want 1", len(recs))
			}
			checkRecord(t, recs[0], r.status, true, false)
			tt.check(t, r, recs[0])
		})
	}
}

func TestRawTruncatedBody(t *testing.T) {
	srv, token := start(t)
	srv.Script("/api/alerts", xdrtest.Raw(200, http.Header{"Content-Length": {"100"}}, `{"value":[`))
	_, err := sendErr(freshClient(t, srv), "GET", srv.URL+"/api/alerts", token, "")
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestGraphErrorEchoesClientRequestID(t *testing.T) {
	srv, token := start(t)
	srv.Script("/api/alerts", xdrtest.GraphError(429, "TooManyRequests", "slow down"))
	req, _ := http.NewRequest("GET", srv.URL+"/api/alerts", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("client-request-id", "3f1c7d9e-client")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := readReply(t, resp)
	env := decodeJSON[graphEnvelope](t, r.body)
	if got := env.Error.InnerError.ClientRequestID; got != "3f1c7d9e-client" {
		t.Errorf("innerError client-request-id = %q, want the request's", got)
	}
	if got := r.header.Get("client-request-id"); got != "3f1c7d9e-client" {
		t.Errorf("client-request-id header = %q, want the request's", got)
	}
}

func TestFaultCopies(t *testing.T) {
	base := xdrtest.Throttle("1")
	changed := base.WithHeader("Retry-After", "9")
	if got := base.Header.Get("Retry-After"); got != "1" {
		t.Errorf("WithHeader changed the original: Retry-After = %q, want 1", got)
	}
	if got := changed.Header.Get("Retry-After"); got != "9" {
		t.Errorf("copy's Retry-After = %q, want 9", got)
	}

	copies := base.Times(3)
	if len(copies) != 3 {
		t.Fatalf("len(Times(3)) = %d, want 3", len(copies))
	}
	for _, n := range []int{0, -1} {
		if got := base.Times(n); got != nil {
			t.Errorf("Times(%d) = %v, want nil", n, got)
		}
	}

	header := http.Header{"X-A": {"1"}}
	raw := xdrtest.Raw(500, header, "")
	header.Set("X-A", "2")
	if got := raw.Header.Get("X-A"); got != "1" {
		t.Errorf("Raw kept a reference to the caller's header: X-A = %q, want 1", got)
	}
}

// TestDropAndReset checks the client's error for each way of closing the
// connection, over plain HTTP and TLS, with and without a request body.
func TestDropAndReset(t *testing.T) {
	tests := []struct {
		name  string
		fault xdrtest.Fault
		check func(err error) bool
		want  string
	}{
		{"Drop", xdrtest.Drop(), func(err error) bool {
			return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		}, "io.EOF or io.ErrUnexpectedEOF"},
		{"Reset", xdrtest.Reset(), func(err error) bool {
			return errors.Is(err, syscall.ECONNRESET)
		}, "syscall.ECONNRESET"},
	}
	for _, tls := range []bool{false, true} {
		for _, method := range []string{"GET", "POST"} {
			for _, tt := range tests {
				name := tt.name + " " + method
				if tls {
					name += " TLS"
				}
				t.Run(name, func(t *testing.T) {
					srv := xdrtest.NewUnstartedServer()
					t.Cleanup(srv.Close)
					if tls {
						srv.StartTLS()
					} else {
						srv.Start()
					}
					token := srv.IssueToken(time.Hour)
					srv.Script("/api/advancedqueries/run", tt.fault)

					body := ""
					if method == "POST" {
						body = `{"Query":"` + strings.Repeat("a", 64<<10) + `"}`
					}
					client := freshClient(t, srv)
					_, err := sendErr(client, method, srv.URL+"/api/advancedqueries/run", token, body)
					if err == nil {
						t.Fatal("got a response, want a transport error")
					}
					if !tt.check(err) {
						t.Errorf("error = %v (%T), want %s", err, errors.Unwrap(err), tt.want)
					}

					recs := srv.Requests()
					if len(recs) != 1 {
						t.Fatalf("len(Requests()) = %d, want 1", len(recs))
					}
					checkRecord(t, recs[0], 0, true, true)

					// The server keeps serving after the fault.
					r := send(t, client, "POST", srv.URL+"/api/advancedqueries/run", token, `{"Query":"x"}`)
					if r.status != 200 {
						t.Errorf("status after the fault = %d, want 200", r.status)
					}
				})
			}
		}
	}
}

// TestLargeBody checks that a 20 MiB body arrives with its Content-Length,
// and that serving it allocates far less than 20 MiB.
func TestLargeBody(t *testing.T) {
	const size = 20 << 20
	srv, token := start(t)
	srv.Script("/api/alerts", xdrtest.LargeBody(500, size))
	client := freshClient(t, srv)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	req, _ := http.NewRequest("GET", srv.URL+"/api/alerts", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Errorf("status = %d, want 500", resp.StatusCode)
	}
	if resp.ContentLength != size {
		t.Errorf("Content-Length = %d, want %d", resp.ContentLength, size)
	}
	tail := &tailWriter{max: 128}
	head := make([]byte, 64)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(tail, resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	runtime.ReadMemStats(&after)

	if got := int64(len(head)) + n; got != size {
		t.Errorf("body length = %d, want %d", got, size)
	}
	if want := `{"error":{"code":"InternalServerError","message":"`; !strings.HasPrefix(string(head), want) {
		t.Errorf("body starts %q, want %q", head, want)
	}
	rec := srv.Requests()[0]
	if want := `","target":"` + rec.TrackingID + `"}}`; !strings.HasSuffix(string(tail.buf), want) {
		t.Errorf("body ends %q, want %q", tail.buf, want)
	}
	t.Logf("allocated %d bytes while serving and reading %d bytes", after.TotalAlloc-before.TotalAlloc, size)
	// Client and server share the process, so this bounds both sides.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Errorf("serving and reading the body allocated %d bytes, want at most %d", alloc, size/4)
	}
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	buf []byte
	max int
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.max:]...)
	}
	return len(p), nil
}

func TestCloseEndsStalledLargeBody(t *testing.T) {
	srv, token := start(t)
	srv.Script("/api/alerts", xdrtest.LargeBody(500, 64<<20))
	client := freshClient(t, srv)

	req, _ := http.NewRequest("GET", srv.URL+"/api/alerts", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	// The client reads nothing, so the server's writes block once the
	// socket buffers fill. Close must still return.
	srv.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Error("reading the body after Close succeeded, want a truncated body")
	}
}

func TestDelayEndsWhenClientCancels(t *testing.T) {
	srv, token := start(t)
	waiting := make(chan struct{})
	srv.SetFaultFunc(func(r *http.Request) (xdrtest.Fault, bool) {
		close(waiting)
		return xdrtest.Throttle("1").WithDelay(time.Hour), true
	})

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/alerts", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	client := freshClient(t, srv)
	errc := make(chan error, 1)
	go func() {
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()

	<-waiting
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}

	// The handler records the request once it notices that the client
	// closed the connection.
	for len(srv.Requests()) == 0 {
		time.Sleep(time.Millisecond)
	}
	checkRecord(t, srv.Requests()[0], 0, true, false)
}

func TestStallSendsStartOfBody(t *testing.T) {
	srv, token := start(t)
	srv.Script("/api/alerts", xdrtest.ErrorCode(500, "InternalServerError", "boom").WithStall(10))
	req, _ := http.NewRequest("GET", srv.URL+"/api/alerts", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := freshClient(t, srv).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 500 || resp.ContentLength <= 10 {
		t.Errorf("status %d, Content-Length %d; want 500 and the whole body's length", resp.StatusCode, resp.ContentLength)
	}
	start := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, start); err != nil || string(start) != `{"error":{` {
		t.Fatalf("first bytes %q, %v", start, err)
	}

	// The rest never comes; closing the server ends the read.
	srv.Close()
	if _, err := io.Copy(io.Discard, resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading past the stall: %v, want io.ErrUnexpectedEOF", err)
	}
}

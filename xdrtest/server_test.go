package xdrtest_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdrretry/xdrretry/xdrtest"
)

func TestServerListensOnLoopback(t *testing.T) {
	srv, _ := start(t)
	if strings.HasSuffix(srv.URL, "/") {
		t.Errorf("URL %q ends with a slash", srv.URL)
	}
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatalf("parse URL %q: %v", srv.URL, err)
	}
	if u.Scheme != "http" {
		t.Errorf("scheme = %q, want http", u.Scheme)
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || !ip.IsLoopback() {
		t.Errorf("host = %q, want a loopback IP", u.Hostname())
	}
}

func TestUnstartedServer(t *testing.T) {
	srv := xdrtest.NewUnstartedServer()
	t.Cleanup(srv.Close)
	if srv.URL != "" {
		t.Errorf("URL before Start = %q, want empty", srv.URL)
	}
	srv.SetAuth(false)
	srv.Start()
	if srv.URL == "" {
		t.Fatal("URL after Start is empty")
	}
	r := send(t, srv.Client(), "GET", srv.URL+"/api/machines", "", "")
	if r.status != http.StatusOK {
		t.Errorf("status = %d, want 200", r.status)
	}
}

func TestUnstartedServerClose(t *testing.T) {
	srv := xdrtest.NewUnstartedServer()
	srv.Close()
	srv.Close()
}

func TestStartTLS(t *testing.T) {
	srv := xdrtest.NewUnstartedServer()
	t.Cleanup(srv.Close)
	srv.StartTLS()
	token := srv.IssueToken(time.Hour)
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatalf("URL = %q, want https", srv.URL)
	}
	r := send(t, srv.Client(), "GET", srv.URL+"/api/alerts", token, "")
	if r.status != http.StatusOK {
		t.Errorf("status = %d, want 200", r.status)
	}
}

func TestHandlerMountedElsewhere(t *testing.T) {
	srv, token := start(t)
	other := httptest.NewServer(http.StripPrefix("/defender", srv.Handler()))
	t.Cleanup(other.Close)

	r := send(t, other.Client(), "GET", other.URL+"/defender/api/machines", token, "")
	if r.status != http.StatusOK {
		t.Errorf("status = %d, want 200; body %s", r.status, r.body)
	}
	if n := srv.Count("GET /api/machines"); n != 1 {
		t.Errorf("Count = %d, want 1", n)
	}
	if n := srv.Connections(); n != 0 {
		t.Errorf("Connections = %d, want 0 for requests served by another server", n)
	}
}

func TestRequestsRecordEachRequest(t *testing.T) {
	srv, token := start(t)
	client := srv.Client()
	machineID := srv.Machines()[0].ID
	srv.Script("GET /api/alerts", xdrtest.Throttle("3"))

	before := time.Now()
	send(t, client, "GET", srv.URL+"/api/machines?$top=2", token, "")
	send(t, client, "GET", srv.URL+"/api/machines/"+machineID, "", "")
	send(t, client, "GET", srv.URL+"/api/machines/unknown", token, "")
	send(t, client, "GET", srv.URL+"/api/alerts", token, "")
	send(t, client, "POST", srv.URL+"/api/advancedqueries/run", token, `{"Query":"DeviceInfo"}`)

	records := srv.Requests()
	want := []xdrtest.Record{
		{Method: "GET", Path: "/api/machines", Query: "$top=2", Status: 200, Token: token},
		{Method: "GET", Path: "/api/machines/" + machineID, Status: 401, Code: "Unauthorized"},
		{Method: "GET", Path: "/api/machines/unknown", Status: 404, Code: "NotFound", Token: token},
		{Method: "GET", Path: "/api/alerts", Status: 429, Code: "TooManyRequests", Token: token, Fault: true},
		{Method: "POST", Path: "/api/advancedqueries/run", Status: 200, Token: token},
	}
	if len(records) != len(want) {
		t.Fatalf("len(Requests()) = %d, want %d: %+v", len(records), len(want), records)
	}
	for i, got := range records {
		w := want[i]
		if got.Status >= 400 {
			if !uuidV4.MatchString(got.TrackingID) {
				t.Errorf("record %d: TrackingID = %q, want a UUID", i, got.TrackingID)
			}
		} else if got.TrackingID != "" {
			t.Errorf("record %d: TrackingID = %q, want empty for a success", i, got.TrackingID)
		}
		if got.Time.Before(before) || got.Time.After(time.Now()) {
			t.Errorf("record %d: Time = %v, outside the test's run", i, got.Time)
		}
		if i > 0 && got.Time.Before(records[i-1].Time) {
			t.Errorf("record %d: Time %v is before the previous record's", i, got.Time)
		}
		got.TrackingID, got.Time = "", time.Time{}
		if got != w {
			t.Errorf("record %d = %+v, want %+v", i, got, w)
		}
	}
}

func TestRequestsReturnsCopy(t *testing.T) {
	srv, token := start(t)
	send(t, srv.Client(), "GET", srv.URL+"/api/machines", token, "")
	records := srv.Requests()
	records[0].Path = "/changed"
	if got := srv.Requests()[0].Path; got != "/api/machines" {
		t.Errorf("Path after changing the copy = %q, want /api/machines", got)
	}
}

func TestCount(t *testing.T) {
	srv, token := start(t)
	client := srv.Client()
	ids := srv.Machines()
	send(t, client, "GET", srv.URL+"/api/machines", token, "")
	send(t, client, "GET", srv.URL+"/api/machines/"+ids[0].ID, token, "")
	send(t, client, "GET", srv.URL+"/api/machines/"+ids[1].ID+"?x=1", token, "")
	send(t, client, "POST", srv.URL+"/api/machines/"+ids[0].ID+"/isolate", token, `{"Comment":"c"}`)
	send(t, client, "DELETE", srv.URL+"/api/machines/"+ids[0].ID, token, "")

	tests := []struct {
		route string
		want  int
	}{
		{"/api/machines", 1},
		{"GET /api/machines", 1},
		{"POST /api/machines", 0},
		{"/api/machines/{id}", 3},
		{"GET /api/machines/{id}", 2},
		{"get /api/Machines/{machineId}", 2},
		{"DELETE /api/machines/{id}", 1},
		{"/api/machines/" + ids[0].ID, 2},
		{"POST /api/machines/{id}/isolate", 1},
		{"/api/machines/{id}/offboard", 0},
		{"/api/{x}/{y}", 3},
		{"/api", 0},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			if got := srv.Count(tt.route); got != tt.want {
				t.Errorf("Count(%q) = %d, want %d", tt.route, got, tt.want)
			}
		})
	}

	srv.ResetLog()
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("len(Requests()) after ResetLog = %d, want 0", n)
	}
	if n := srv.Count("/api/machines/{id}"); n != 0 {
		t.Errorf("Count after ResetLog = %d, want 0", n)
	}
}

func TestCountPanicsOnInvalidRoute(t *testing.T) {
	srv, _ := start(t)
	for _, route := range []string{"", "GET", "api/machines", "GET api/machines", "/api/machines?x=1"} {
		t.Run(route, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Count(%q) did not panic", route)
				}
			}()
			srv.Count(route)
		})
	}
}

func TestConnectionsCountsNewConnections(t *testing.T) {
	srv, token := start(t)
	if n := srv.Connections(); n != 0 {
		t.Fatalf("Connections before any request = %d, want 0", n)
	}

	// The httptest client keeps the connection alive between requests.
	client := srv.Client()
	send(t, client, "GET", srv.URL+"/api/machines", token, "")
	send(t, client, "GET", srv.URL+"/api/alerts", token, "")
	if n := srv.Connections(); n != 1 {
		t.Errorf("Connections after two keep-alive requests = %d, want 1", n)
	}

	fresh := freshClient(t, srv)
	send(t, fresh, "GET", srv.URL+"/api/machines", token, "")
	send(t, fresh, "GET", srv.URL+"/api/machines", token, "")
	if n := srv.Connections(); n != 3 {
		t.Errorf("Connections after two more requests without keep-alive = %d, want 3", n)
	}

	srv.ResetLog()
	if n := srv.Connections(); n != 3 {
		t.Errorf("Connections after ResetLog = %d, want 3", n)
	}
}

func TestTrackingIDsAreFresh(t *testing.T) {
	srv, token := start(t)
	client := srv.Client()
	srv.Script("/api/alerts",
		xdrtest.ErrorCode(500, "InternalServerError", "boom").Times(3)...)
	srv.Script("/api/machineactions",
		xdrtest.GraphError(503, "serviceNotAvailable", "try later").Times(3)...)
	srv.Script("/api/machines",
		xdrtest.HTML(502).Times(3)...)

	seen := map[string]string{}
	for i := range 3 {
		for _, path := range []string{"/api/alerts", "/api/machineactions", "/api/machines", "/api/unknown"} {
			send(t, client, "GET", srv.URL+path, token, "")
			records := srv.Requests()
			id := records[len(records)-1].TrackingID
			if !uuidV4.MatchString(id) {
				t.Errorf("%s request %d: TrackingID = %q, want a UUID v4", path, i, id)
				continue
			}
			if prev, dup := seen[id]; dup {
				t.Errorf("%s request %d: TrackingID %s repeats the one of %s", path, i, id, prev)
			}
			seen[id] = fmt.Sprintf("%s request %d", path, i)
		}
	}
}

func TestConcurrentRequests(t *testing.T) {
	const (
		workers  = 64
		requests = 50
	)
	srv, token := start(t)
	machineID := srv.Machines()[0].ID

	// Every seventh request, counted across workers, gets a throttle.
	var seq atomic.Int64
	srv.SetFaultFunc(func(r *http.Request) (xdrtest.Fault, bool) {
		if seq.Add(1)%7 == 0 {
			return xdrtest.Throttle("1"), true
		}
		return xdrtest.Fault{}, false
	})
	const scripted = 100
	srv.Script("GET /api/alerts/{id}", xdrtest.ErrorCode(503, "ServiceUnavailable", "busy").Times(scripted)...)

	// The transport allows one connection per worker, so connections are
	// reused under load.
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.MaxConnsPerHost = workers
	tr.MaxIdleConnsPerHost = workers
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}

	paths := []string{
		"/api/machines",
		"/api/machines/" + machineID,
		"/api/alerts",
		"/api/alerts/unknown",
		"/api/machineactions",
	}
	var (
		wg       sync.WaitGroup
		statuses sync.Map // status code to *atomic.Int64
		failures atomic.Int64
	)
	for w := range workers {
		wg.Go(func() {
			for i := range requests {
				path := paths[(w+i)%len(paths)]
				r, err := sendErr(client, "GET", srv.URL+path, token, "")
				if err != nil {
					failures.Add(1)
					t.Errorf("worker %d request %d: GET %s: %v", w, i, path, err)
					continue
				}
				n, _ := statuses.LoadOrStore(r.status, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
				// Read the log and the queues concurrently with serving.
				if i%10 == 0 {
					srv.Count("/api/alerts/{id}")
					srv.IssueToken(time.Minute)
				}
			}
		})
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.FailNow()
	}

	total := workers * requests
	records := srv.Requests()
	if len(records) != total {
		t.Errorf("len(Requests()) = %d, want %d", len(records), total)
	}
	var sum int64
	statuses.Range(func(k, v any) bool {
		sum += v.(*atomic.Int64).Load()
		return true
	})
	if sum != int64(total) {
		t.Errorf("responses = %d, want %d", sum, total)
	}
	throttled, unavailable := 0, 0
	for _, rec := range records {
		switch rec.Status {
		case http.StatusTooManyRequests:
			throttled++
		case http.StatusServiceUnavailable:
			unavailable++
		}
	}
	// The server calls the fault function only for requests that no script
	// matched.
	if want := (total - scripted) / 7; throttled != want {
		t.Errorf("throttled responses = %d, want %d", throttled, want)
	}
	if unavailable != scripted {
		t.Errorf("503 responses = %d, want %d", unavailable, scripted)
	}
	if n := srv.Count("GET /api/alerts/{id}"); n != total/len(paths) {
		t.Errorf("Count(GET /api/alerts/{id}) = %d, want %d", n, total/len(paths))
	}
	// The transport opens at most one connection per worker at a time, but
	// it may replace one that it closed, so allow some slack.
	if n := srv.Connections(); n < 1 || n > 2*workers {
		t.Errorf("Connections = %d, want 1 to %d for %d keep-alive requests", n, 2*workers, total)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	baseline := runtime.NumGoroutine()

	srv, token := start(t)
	srv.Script("/api/machines", xdrtest.Drop(), xdrtest.Reset(), xdrtest.LargeBody(500, 1<<20))
	handling := make(chan struct{})
	srv.SetFaultFunc(func(r *http.Request) (xdrtest.Fault, bool) {
		if r.URL.Path != "/api/alerts" {
			return xdrtest.Fault{}, false
		}
		close(handling)
		return xdrtest.Throttle("1").WithDelay(time.Hour), true
	})
	client := freshClient(t, srv)
	for range 3 {
		sendErr(client, "GET", srv.URL+"/api/machines", token, "")
	}
	keepAlive := srv.Client()
	send(t, keepAlive, "GET", srv.URL+"/api/machineactions", token, "")

	// A request that waits for its delay while the server closes.
	delayed := make(chan error, 1)
	go func() {
		_, err := sendErr(client, "GET", srv.URL+"/api/alerts", token, "")
		delayed <- err
	}()
	<-handling

	srv.Close()
	if err := <-delayed; err == nil {
		t.Error("delayed request after Close: got a response, want an error")
	}
	client.CloseIdleConnections()

	// Goroutines of closed connections exit shortly after Close returns, so
	// poll rather than compare once.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("goroutines after Close = %d, want at most %d\n%s", n, baseline, buf)
	}
}

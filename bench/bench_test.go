package bench

import (
	"context"
	"flag"
	"net/http"
	"strconv"
	"testing"

	"github.com/xdrretry/xdrretry/xdrtest"
)

// Each benchmark runs one sub-benchmark per contender, named
// contender=NAME, so that benchstat compares them (see turn for why the
// loop):
//
//	for i in 0 1 2 3 4 5 6 7 8 9; do go test -run '^$' -bench . . -turn $i; done > bench.txt
//	benchstat -col /contender bench.txt
//
// Besides time and allocations, each reports two counts per operation:
// requests/op, the requests that the server saw, and conns/op, the TCP
// connections that the server accepted.

// Paths for which the fault function returns a 200 with a body of a fixed
// size. They are not routes of xdrtest, so only the fault function serves
// them.
const (
	path1KiB = "/api/bench/1kib"
	path1MiB = "/api/bench/1mib"
)

// serveBodies returns the fault for GET path1KiB and GET path1MiB: a 200
// with a body of 1 KiB or 1 MiB, streamed with a Content-Length.
func serveBodies(r *http.Request) (xdrtest.Fault, bool) {
	switch r.URL.Path {
	case path1KiB:
		return xdrtest.LargeBody(http.StatusOK, 1<<10), true
	case path1MiB:
		return xdrtest.LargeBody(http.StatusOK, 1<<20), true
	}
	return xdrtest.Fault{}, false
}

func BenchmarkSuccess(b *testing.B) {
	for _, size := range []struct{ name, path string }{
		{"1KiB", path1KiB},
		{"1MiB", path1MiB},
	} {
		for _, c := range inTurn() {
			b.Run("body="+size.name+"/contender="+c.name, func(b *testing.B) {
				f := newFixture(b)
				f.srv.SetFaultFunc(serveBodies)
				client := c.newClient(f.base, nil)
				runGets(b, f, client, scenario{
					url:   f.srv.URL + size.path,
					route: "GET " + size.path,
					want:  http.StatusOK,
				})
			})
		}
	}
}

// BenchmarkRetry500 sends requests that each meet one 500 and then
// succeed. bare and kiota do not retry a 500 and return it.
func BenchmarkRetry500(b *testing.B) {
	const route = "GET /api/alerts/{id}"
	for _, c := range inTurn() {
		b.Run("contender="+c.name, func(b *testing.B) {
			f := newFixture(b)
			client := c.newClient(f.base, nil)
			want := http.StatusInternalServerError
			if c.retries500 {
				want = http.StatusOK
			}
			fault := xdrtest.ErrorCode(http.StatusInternalServerError, "InternalServerError", "An unexpected error occurred")
			runGets(b, f, client, scenario{
				url:   f.alertURL,
				route: route,
				want:  want,
				prepare: func(int) string {
					f.srv.Script(route, fault)
					return f.token
				},
			})
		})
	}
}

// BenchmarkNotFound sends requests for an alert that does not exist. The
// server responds with a 404 and a Defender error envelope.
func BenchmarkNotFound(b *testing.B) {
	for _, c := range inTurn() {
		b.Run("contender="+c.name, func(b *testing.B) {
			f := newFixture(b)
			client := c.newClient(f.base, nil)
			runGets(b, f, client, scenario{
				url:   f.missingURL,
				route: "GET /api/alerts/{id}",
				want:  http.StatusNotFound,
			})
		})
	}
}

// BenchmarkRefresh401 sends each request with a token that the server
// has never issued, so it answers 401. xdrretry calls its refresh hook,
// which returns a valid token without a network call, and sends the
// request again. The other contenders have no refresh hook and return the
// 401.
//
// Each request carries a new rejected token, because xdrretry sends a
// later request that carries an already replaced token with its
// replacement, which would skip the 401.
func BenchmarkRefresh401(b *testing.B) {
	for _, c := range inTurn() {
		b.Run("contender="+c.name, func(b *testing.B) {
			f := newFixture(b)
			refresh := func(context.Context) (string, error) { return f.token, nil }
			client := c.newClient(f.base, refresh)
			want := http.StatusUnauthorized
			if c.refreshes {
				want = http.StatusOK
			}
			runGets(b, f, client, scenario{
				url:   f.alertURL,
				route: "GET /api/alerts/{id}",
				want:  want,
				prepare: func(i int) string {
					return "rejected-" + strconv.Itoa(i)
				},
			})
		})
	}
}

// turn sets the contender with which each benchmark starts. Within one
// process, -count runs each contender's benchmark that many times in a
// row, so a fair comparison runs the process several times, each with
// the next turn:
//
//	for i in 0 1 2 3 4 5 6 7 8 9; do go test -run '^$' -bench . . -turn $i; done
//
// Each contender then runs equally often first and last, and a place in
// the order, with the heap and scheduler state that it brings, does not
// favour the same contender in every run.
var turn = flag.Int("turn", 0, "index of the contender that each benchmark runs first")

// inTurn returns the contenders in order, starting with the one at
// index -turn.
func inTurn() []contender {
	k := *turn % len(contenders)
	if k < 0 {
		k += len(contenders)
	}
	order := append([]contender(nil), contenders[k:]...)
	return append(order, contenders[:k]...)
}

// scenario describes the request of each benchmark iteration.
type scenario struct {
	url   string
	route string // xdrtest route that matches url, to count requests
	want  int    // status with which each request must end

	// prepare runs before each request and returns its bearer token. Nil
	// means the fixture's valid token.
	prepare func(i int) string
}

// resetLogEvery bounds the request log that the server keeps in memory.
const resetLogEvery = 1024

// runGets runs the benchmark loop of one contender: each iteration sends
// GET s.url through client and fails the benchmark unless the request
// ends with s.want.
func runGets(b *testing.B, f *fixture, client *http.Client, s scenario) {
	ctx := b.Context()
	requests := 0
	conns := f.srv.Connections()

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		token := f.token
		if s.prepare != nil {
			token = s.prepare(i)
		}
		status, err := get(ctx, client, s.url, token)
		if err != nil {
			b.Fatalf("request %d: %v", i, err)
		}
		if status != s.want {
			b.Fatalf("request %d ended with status %d, want %d", i, status, s.want)
		}
		i++
		if i%resetLogEvery == 0 {
			requests += f.srv.Count(s.route)
			f.srv.ResetLog()
		}
	}
	requests += f.srv.Count(s.route)
	conns = f.srv.Connections() - conns

	b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
	b.ReportMetric(float64(conns)/float64(b.N), "conns/op")
}

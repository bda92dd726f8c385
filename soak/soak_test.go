package soak_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xdrretry/xdrretry"
	"github.com/xdrretry/xdrretry/xdrtest"
)

// soakRequests is the number of requests of TestSoak. CI runs the small
// size; -soak or the soak build tag runs the full one.
var (
	soakFull     = flag.Bool("soak", false, "run TestSoak at full size (20,000 requests)")
	soakRequests = 2000
)

const soakFullRequests = 20000

// bodyCounter wraps a transport and counts the response bodies it hands
// out and the ones that are closed.
type bodyCounter struct {
	base           http.RoundTripper
	opened, closed atomic.Int64
}

func (b *bodyCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.base.RoundTrip(req)
	if err == nil {
		b.opened.Add(1)
		resp.Body = &countedBody{ReadCloser: resp.Body, closed: &b.closed}
	}
	return resp, err
}

type countedBody struct {
	io.ReadCloser
	once   sync.Once
	closed *atomic.Int64
}

func (c *countedBody) Close() error {
	c.once.Do(func() { c.closed.Add(1) })
	return c.ReadCloser.Close()
}

// TestSoak sends many requests from 64 goroutines through one Transport
// against the fake API with mixed faults: 500s, 429s with and without
// Retry-After, dropped and reset connections, and tokens that expire
// during the run.
func TestSoak(t *testing.T) {
	defer goleak.VerifyNone(t)
	total := soakRequests
	if *soakFull {
		total = soakFullRequests
	}
	const workers = 64
	const expireEvery = 500

	srv := xdrtest.NewServer()
	defer srv.Close()
	var token atomic.Value
	token.Store(srv.IssueToken(time.Hour))

	var faultSeq atomic.Uint64
	srv.SetFaultFunc(func(r *http.Request) (xdrtest.Fault, bool) {
		// A fixed sequence, so that every run meets the same mix.
		rng := rand.New(rand.NewPCG(faultSeq.Add(1), 7))
		switch n := rng.IntN(100); {
		case n < 5:
			return xdrtest.ErrorCode(500, "InternalServerError", "soak"), true
		case n < 7:
			return xdrtest.Throttle("0.01"), true
		case n < 9:
			return xdrtest.Throttle(""), true
		case n < 10:
			return xdrtest.Drop(), true
		case n < 11:
			return xdrtest.Reset(), true
		}
		return xdrtest.Fault{}, false
	})

	var refreshes, expiries atomic.Int64
	base := &bodyCounter{base: &http.Transport{MaxIdleConnsPerHost: workers}}
	tr := xdrretry.New(base,
		xdrretry.WithBackoff(time.Millisecond, 5*time.Millisecond),
		xdrretry.WithMaxRetries(8),
		xdrretry.WithTokenRefresh(func(ctx context.Context, _ *xdrretry.Error) (string, error) {
			refreshes.Add(1)
			fresh := srv.IssueToken(time.Hour)
			token.Store(fresh)
			return fresh, nil
		}),
	)

	var (
		next                          atomic.Int64
		responses, typedErrs, badErrs atomic.Int64
		lastExpired                   atomic.Value
		expireMu                      sync.Mutex
	)
	lastExpired.Store("")
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(total) {
					return
				}
				current := token.Load().(string)
				if n%expireEvery == 0 && n < int64(total)-expireEvery {
					// Expire the token in use, once it has been replaced
					// since the last expiry.
					expireMu.Lock()
					if lastExpired.Load() != current {
						srv.ExpireToken(current)
						lastExpired.Store(current)
						expiries.Add(1)
						srv.ResetLog()
					}
					expireMu.Unlock()
				}

				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/alerts", nil)
				req.Header.Set("Authorization", "Bearer "+current)
				resp, err := tr.RoundTrip(req)
				var xerr *xdrretry.Error
				switch {
				case err == nil && resp != nil:
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					responses.Add(1)
				case resp == nil && errors.As(err, &xerr):
					typedErrs.Add(1)
				default:
					badErrs.Add(1)
					t.Errorf("request %d: response %v and error %v", n, resp != nil, err)
				}
			}
		}()
	}
	wg.Wait()

	tr.CloseIdleConnections()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	outcomes := responses.Load() + typedErrs.Load() + badErrs.Load()
	t.Logf("%d requests: %d responses, %d typed errors; %d token expiries, %d refreshes; %d bodies opened, %d closed; heap %d KiB before, %d KiB after",
		total, responses.Load(), typedErrs.Load(), expiries.Load(), refreshes.Load(),
		base.opened.Load(), base.closed.Load(), before.HeapInuse>>10, after.HeapInuse>>10)
	if outcomes != int64(total) {
		t.Errorf("%d outcomes for %d requests", outcomes, total)
	}
	if base.opened.Load() != base.closed.Load() {
		t.Errorf("%d response bodies opened, %d closed", base.opened.Load(), base.closed.Load())
	}
	if refreshes.Load() != expiries.Load() {
		t.Errorf("%d refreshes for %d token expiries", refreshes.Load(), expiries.Load())
	}
	if expiries.Load() == 0 {
		t.Errorf("no token expired during the run")
	}
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 64<<20 {
		t.Errorf("heap grew by %d MiB", grown>>20)
	}
}

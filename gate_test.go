package xdrretry

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestQuotaClassOf(t *testing.T) {
	tests := map[string]QuotaClass{
		"https://api.security.microsoft.com/api/advancedqueries/run":           QuotaHunting,
		"https://api.security.microsoft.com/api/advancedhunting/run":           QuotaHunting,
		"https://graph.microsoft.com/v1.0/security/runHuntingQuery":            QuotaHunting,
		"https://graph.microsoft.com/beta/security/runHuntingQuery/":           QuotaHunting,
		"https://api.security.microsoft.com/api/indicators/import":             QuotaIndicatorImport,
		"https://api.security.microsoft.com/api/machines/abc/runliveresponse":  QuotaLiveResponse,
		"https://api.security.microsoft.com/api/machines":                      QuotaGeneral,
		"https://api.security.microsoft.com/api/indicators":                    QuotaGeneral,
		"https://api.security.microsoft.com/api/advancedqueries/run/extra":     QuotaGeneral,
		"https://graph.microsoft.com/v1.0/security/incidents?$filter=x eq 'y'": QuotaGeneral,
	}
	for raw, want := range tests {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := QuotaClassOf(u); got != want {
			t.Errorf("QuotaClassOf(%s) = %v, want %v", raw, got, want)
		}
	}
	if got := QuotaClassOf(nil); got != QuotaGeneral {
		t.Errorf("QuotaClassOf(nil) = %v", got)
	}
}

func TestThrottleGateHoldsLaterRequests(t *testing.T) {
	srv := newScriptServer(t, reply(429, `{"error":{"code":"TooManyRequests","message":"slow down","target":"t"}}`, "Retry-After: 30"))
	start := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	tr, clock := newFakeClockTransport(start)

	// The first request meets the 429 and waits 30 s itself.
	resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// Rewind the clock to just after the 429: a new request of the same
	// quota waits for the gate, one of another quota does not.
	clock.current = start.Add(10 * time.Second)
	clock.waits = nil
	resp, err = tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/machines"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waits := clock.all()
	if len(waits) != 1 || waits[0] < 20*time.Second || waits[0] > 22*time.Second {
		t.Errorf("held %v, want the 20 s left at the gate plus at most 2 s of spread", waits)
	}

	clock.current = start.Add(10 * time.Second)
	clock.waits = nil
	resp, err = tr.RoundTrip(mustRequest(t, http.MethodPost, srv.URL+"/api/advancedqueries/run"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if w := clock.all(); len(w) != 0 {
		t.Errorf("a hunting query waited %v at the general gate", w)
	}
}

// TestThrottleGateShutWithoutRetry checks that a 429 shuts the gate also
// when the request that meets it does not retry, and that its error gives
// the wait.
func TestThrottleGateShutWithoutRetry(t *testing.T) {
	throttle := reply(429, `{"error":{"code":"TooManyRequests","message":"slow down","target":"t"}}`, "Retry-After: 30")
	for _, tc := range []struct {
		name   string
		method string
		opts   []Option
		steps  []step
		wantIs error
	}{
		{"no retries for the request", http.MethodGet, nil, []step{throttle}, ErrTooManyRequests},
		{"method not retried", http.MethodPost, []Option{WithRetryMethods(http.MethodGet)}, []step{throttle}, ErrTooManyRequests},
		{"last retry", http.MethodGet, []Option{WithMaxRetries(1)}, []step{reply(500, envelope500(trackingA)), throttle}, ErrRetriesExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScriptServer(t, tc.steps...)
			start := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
			tr, clock := newFakeClockTransport(start, tc.opts...)

			req := mustRequest(t, tc.method, srv.URL+"/api/alerts")
			if tc.name == "no retries for the request" {
				req = req.WithContext(ContextWithOptions(req.Context(), WithMaxRetries(0)))
			}
			_, err := tr.RoundTrip(req)
			xerr := mustAsError(t, err)
			if !errors.Is(err, tc.wantIs) {
				t.Errorf("err = %v, want %v", err, tc.wantIs)
			}
			if xerr.RetryAfter != 30*time.Second {
				t.Errorf("RetryAfter = %v, want 30s", xerr.RetryAfter)
			}

			clock.current = start.Add(10 * time.Second)
			clock.waits = nil
			resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/machines"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if waits := clock.all(); len(waits) != 1 || waits[0] < 20*time.Second {
				t.Errorf("next request held %v, want the 20 s left at the gate", waits)
			}
		})
	}
}

func TestThrottleGateHoldBounded(t *testing.T) {
	srv := newScriptServer(t, reply(429, "", "Retry-After: Fri, 31 Dec 9999 23:59:59 GMT"))
	start := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	tr, clock := newFakeClockTransport(start)
	_, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	if xerr := mustAsError(t, err); xerr.RetryAfter <= maxGateHold {
		t.Errorf("RetryAfter = %v, want the service's whole wait", xerr.RetryAfter)
	}

	clock.current = start.Add(maxGateHold + time.Second)
	resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/machines"))
	if err != nil {
		t.Fatalf("gate still shut after %v: %v", maxGateHold, err)
	}
	resp.Body.Close()
}

func TestThrottleGateFailsWhenTooLong(t *testing.T) {
	quota := `{"error":{"code":"429","message":"API calls quota exceeded! maximum allowed 1500 per 01:00:00","target":"t"}}`
	srv := newScriptServer(t, reply(429, quota))
	tr, clock := newFakeClockTransport(time.Now())

	_, err := tr.RoundTrip(mustRequest(t, http.MethodPost, srv.URL+"/api/advancedqueries/run"))
	if !errors.Is(err, ErrWaitTooLong) {
		t.Fatalf("first request: err = %v, want ErrWaitTooLong", err)
	}

	// The hour-long gate makes the next hunting query fail without a
	// request.
	_, err = tr.RoundTrip(mustRequest(t, http.MethodPost, srv.URL+"/api/advancedqueries/run"))
	xerr := mustAsError(t, err)
	if !errors.Is(err, ErrWaitTooLong) || !errors.Is(err, ErrTooManyRequests) || !errors.Is(err, errQuotaHeld) {
		t.Errorf("err = %v, want a held TooManyRequests with ErrWaitTooLong", err)
	}
	if xerr.RetryAfter < 59*time.Minute || xerr.Attempts != 0 {
		t.Errorf("RetryAfter = %v, Attempts = %d; want about an hour and 0", xerr.RetryAfter, xerr.Attempts)
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
	if len(clock.all()) != 0 {
		t.Errorf("slept %v", clock.all())
	}
}

func TestThrottleGateDisabled(t *testing.T) {
	srv := newScriptServer(t, reply(429, "", "Retry-After: 30"))
	tr, clock := newFakeClockTransport(time.Now(), WithThrottleGate(false))
	resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	clock.current = clock.current.Add(-20 * time.Second)
	clock.waits = nil
	resp, err = tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if w := clock.all(); len(w) != 0 {
		t.Errorf("held %v with the gate off", w)
	}
}

// TestHerdAtGate starts 200 concurrent requests right after one request
// met a 429 with "Retry-After: 1". The server counts what arrives during
// that second; the gate keeps it to a handful. It takes about a second.
func TestHerdAtGate(t *testing.T) {
	const callers = 200
	var (
		mu       sync.Mutex
		until    time.Time
		inWindow int
	)
	srv := newScriptServer(t)
	srv.fallback = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now := time.Now()
		first := until.IsZero()
		if first {
			until = now.Add(time.Second)
		}
		throttled := now.Before(until)
		if throttled && !first {
			inWindow++
		}
		mu.Unlock()
		if throttled {
			reply(429, `{"error":{"code":"TooManyRequests","message":"quota"}}`, "Retry-After: 1")(w, r)
			return
		}
		reply(200, "ok")(w, r)
	}

	gateShut := make(chan struct{})
	var once sync.Once
	tr := New(&http.Transport{MaxIdleConnsPerHost: callers},
		WithBackoff(10*time.Millisecond, 20*time.Millisecond),
		WithRetryHook(func(RetryEvent) { once.Do(func() { close(gateShut) }) }),
	)
	defer tr.CloseIdleConnections()

	send := func() error {
		resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	errs := make(chan error, callers+1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- send()
	}()

	// The retry hook runs after the 429 has shut the gate.
	<-gateShut
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- send()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d callers: %d requests during the throttled second, %d in all", callers, inWindow, len(srv.requests()))
	if inWindow > 5 {
		t.Errorf("%d requests reached the server during the throttled second, want at most 5", inWindow)
	}
	if n := len(srv.requests()); n < callers+2 {
		t.Errorf("server saw %d requests, want every caller served", n)
	}
}

func TestPacing(t *testing.T) {
	srv := newScriptServer(t)
	tr, clock := newFakeClockTransport(time.Now(), WithPacing(QuotaHunting, 60, 1), WithMaxWait(2500*time.Millisecond))
	for range 3 {
		resp, err := tr.RoundTrip(mustRequest(t, http.MethodPost, srv.URL+"/api/advancedqueries/run"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Without the clock moving, the second and third calls wait their turn.
	waits := clock.all()
	if len(waits) != 2 || waits[0] != time.Second || waits[1] != time.Second {
		t.Errorf("waits = %v, want 1s and 1s at one call a second", waits)
	}

	// Other classes are not paced.
	for range 3 {
		resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := len(clock.all()); n != 2 {
		t.Errorf("general requests were paced: waits %v", clock.all())
	}

	// A turn further away than the maximum wait fails at once.
	tr, _ = newFakeClockTransport(time.Now(), WithPacing(QuotaHunting, 60, 1), WithMaxWait(500*time.Millisecond))
	before := len(srv.requests())
	for i := range 2 {
		resp, err := tr.RoundTrip(mustRequest(t, http.MethodPost, srv.URL+"/api/advancedqueries/run"))
		if i == 0 {
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			continue
		}
		if !errors.Is(err, ErrWaitTooLong) || !errors.Is(err, ErrTooManyRequests) {
			t.Errorf("err = %v, want ErrWaitTooLong", err)
		}
	}
	if n := len(srv.requests()) - before; n != 1 {
		t.Errorf("%d requests sent, want 1 within the pacing limit", n)
	}
}

func TestRetryBudget(t *testing.T) {
	srv := newScriptServer(t)
	srv.fallback = reply(503, "")
	tr := New(&http.Transport{}, WithBackoff(time.Millisecond, time.Millisecond), WithRetryBudget(20, 5))

	var budgetErrs int
	for range 10 {
		_, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
		if errors.Is(err, ErrRetryBudgetExhausted) {
			budgetErrs++
			xerr := mustAsError(t, err)
			if xerr.StatusCode != 503 || !xerr.Transient() {
				t.Errorf("budget error lost the last response: %+v", xerr)
			}
		}
	}
	// 20 tokens at 5 a retry: 4 retries in all, then every request fails
	// after its first attempt.
	if n := len(srv.requests()); n != 10+4 {
		t.Errorf("server saw %d requests, want 14", n)
	}
	if budgetErrs < 9 {
		t.Errorf("%d requests failed on the budget, want at least 9", budgetErrs)
	}

	// Successes earn tokens back.
	srv.fallback = reply(200, "ok")
	for range 5 {
		resp, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := tr.budget.tokens.Load(); got != 5 {
		t.Errorf("tokens = %d after five successes, want 5", got)
	}
}

func TestRetryBudgetRetryStorm(t *testing.T) {
	// 64 callers against a server that fails everything: the default
	// budget allows 100 retries in all, not 64 × 4.
	srv := newScriptServer(t)
	srv.fallback = reply(500, envelope500(trackingA))
	tr := New(&http.Transport{}, WithBackoff(time.Millisecond, time.Millisecond))
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := tr.RoundTrip(mustRequest(t, http.MethodGet, srv.URL+"/api/alerts"))
			if !errors.Is(err, ErrInternalServerError) {
				t.Errorf("err = %v", err)
			}
		}()
	}
	wg.Wait()
	retries := len(srv.requests()) - 64
	t.Logf("64 callers: %d requests, %d retries", len(srv.requests()), retries)
	if retries > DefaultRetryBudget/DefaultRetryCost {
		t.Errorf("%d retries, want at most the budget's %d", retries, DefaultRetryBudget/DefaultRetryCost)
	}
}

func TestBudgetAccounting(t *testing.T) {
	b := newBudget(10, 5)
	if !b.spend() || !b.spend() {
		t.Fatal("a full bucket refused a retry")
	}
	if b.spend() {
		t.Error("an empty bucket allowed a retry")
	}
	b.earn(0)
	if got := b.tokens.Load(); got != 1 {
		t.Errorf("tokens = %d after a first-attempt success, want 1", got)
	}
	b.earn(3)
	if got := b.tokens.Load(); got != 10 {
		t.Errorf("tokens = %d, want the capacity 10", got)
	}
	var none *budget
	if !none.spend() {
		t.Error("a disabled budget refused a retry")
	}
	if newBudget(0, 5) != nil || newBudget(5, 0) != nil {
		t.Error("a zero setting did not disable the budget")
	}
}

func TestGateSpread(t *testing.T) {
	for _, wait := range []time.Duration{0, time.Millisecond, time.Second, time.Minute} {
		for range 100 {
			s := gateSpread(wait)
			if s < 0 || s > wait/10 || s > time.Second {
				t.Fatalf("gateSpread(%v) = %v", wait, s)
			}
		}
	}
	if !strings.Contains(QuotaLiveResponse.String(), "live") {
		t.Errorf("String = %q", QuotaLiveResponse.String())
	}
}

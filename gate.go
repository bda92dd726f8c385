package xdrretry

import (
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// QuotaClass is a group of endpoints that share one throttling quota of
// the Defender APIs. The published limits apply per tenant and app:
//
//   - [QuotaHunting]: advanced hunting queries, 45 calls a minute and 1,500
//     an hour (Defender for Endpoint "Advanced hunting API" page), plus CPU
//     quotas that also return 429.
//   - [QuotaIndicatorImport]: indicator batch import, 30 calls a minute.
//   - [QuotaLiveResponse]: live response commands, 10 calls a minute and 25
//     concurrent sessions.
//   - [QuotaGeneral]: everything else. Most Defender for Endpoint endpoints
//     allow 100 calls a minute and 1,500 an hour; the Defender XDR
//     incidents API allows 50 a minute and 1,500 an hour (Microsoft Defender
//     XDR API terms).
type QuotaClass int

const (
	QuotaGeneral QuotaClass = iota
	QuotaHunting
	QuotaIndicatorImport
	QuotaLiveResponse
)

func (q QuotaClass) String() string {
	switch q {
	case QuotaHunting:
		return "hunting"
	case QuotaIndicatorImport:
		return "indicator-import"
	case QuotaLiveResponse:
		return "live-response"
	default:
		return "general"
	}
}

// QuotaClassOf returns the quota class of a request URL from its path:
// /api/advancedqueries/run, /api/advancedhunting/run and Graph's
// /security/runHuntingQuery are hunting; /api/indicators/import is
// indicator import; /api/machines/{id}/runliveresponse is live response.
func QuotaClassOf(u *url.URL) QuotaClass {
	if u == nil {
		return QuotaGeneral
	}
	path := strings.ToLower(strings.TrimSuffix(u.Path, "/"))
	switch {
	case strings.HasSuffix(path, "/advancedqueries/run"),
		strings.HasSuffix(path, "/advancedhunting/run"),
		strings.HasSuffix(path, "/security/runhuntingquery"):
		return QuotaHunting
	case strings.HasSuffix(path, "/indicators/import"):
		return QuotaIndicatorImport
	case strings.HasSuffix(path, "/runliveresponse"):
		return QuotaLiveResponse
	}
	return QuotaGeneral
}

// quotaKey identifies one quota: a host and a class.
type quotaKey struct {
	host  string
	class QuotaClass
}

func quotaKeyOf(u *url.URL) quotaKey {
	return quotaKey{host: strings.ToLower(u.Host), class: QuotaClassOf(u)}
}

// maxGateHold bounds how long one response shuts a gate: an hour, the
// longest quota window that Defender publishes (1,500 calls an hour). A
// Retry-After far beyond it, such as a date in the year 9999, is more
// likely a fault of the service than a quota, and would otherwise fail
// every request of its host and class for days.
const maxGateHold = time.Hour

// gates records, per quota, until when the service reported the quota as
// spent. Requests of that quota that start or retry before then wait.
type gates struct {
	mu    sync.Mutex
	until map[quotaKey]time.Time
	count atomic.Int32 // len(until), read without the lock
}

// close shuts the gate of key until the given time, or later if it is
// already shut for longer.
func (g *gates) close(key quotaKey, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.until == nil {
		g.until = make(map[quotaKey]time.Time)
	}
	if until.After(g.until[key]) {
		g.until[key] = until
	}
	g.count.Store(int32(len(g.until)))
}

// remaining returns how long the gate of key stays shut, or 0. It drops
// gates that have opened.
func (g *gates) remaining(key quotaKey, now time.Time) time.Duration {
	if g.count.Load() == 0 {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.until[key]
	if !ok {
		return 0
	}
	if !until.After(now) {
		delete(g.until, key)
		g.count.Store(int32(len(g.until)))
		return 0
	}
	return until.Sub(now)
}

// gateSpread returns the extra wait of one request at a gate: up to a
// tenth of the gate's wait, at most a second, so that the requests held at
// a gate do not all leave in the same instant.
func gateSpread(wait time.Duration) time.Duration {
	spread := min(wait/10, time.Second)
	if spread <= 0 {
		return 0
	}
	return rand.N(spread)
}

// pacer holds the client-side rate limiters, one per quota, created on
// first use from the configured limits.
type pacer struct {
	limits map[QuotaClass]rate.Limit
	bursts map[QuotaClass]int

	mu       sync.Mutex
	limiters map[quotaKey]*rate.Limiter
}

// limiter returns the limiter of key, or nil when its class is not paced.
func (p *pacer) limiter(key quotaKey) *rate.Limiter {
	if p == nil {
		return nil
	}
	limit, ok := p.limits[key.class]
	if !ok {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.limiters[key]
	if l == nil {
		if p.limiters == nil {
			p.limiters = make(map[quotaKey]*rate.Limiter)
		}
		l = rate.NewLimiter(limit, p.bursts[key.class])
		p.limiters[key] = l
	}
	return l
}

func newPacer(pacing map[QuotaClass]pace) *pacer {
	p := &pacer{limits: make(map[QuotaClass]rate.Limit), bursts: make(map[QuotaClass]int)}
	for class, pc := range pacing {
		p.limits[class] = rate.Limit(pc.perMinute / 60)
		p.bursts[class] = pc.burst
	}
	return p
}

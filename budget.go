package xdrretry

import "sync/atomic"

// Retry budget defaults, in the manner of the AWS SDKs' retry quota: a
// bucket of 500 tokens, 5 spent by each retry, 1 earned back by each
// request that succeeds on its first attempt and the full cost by a retry
// that succeeds. A healthy service keeps the bucket full. A service that
// fails everything lets one Transport retry 100 times in all before its
// requests fail at once, instead of multiplying the load by the retry
// count.
const (
	DefaultRetryBudget = 500
	DefaultRetryCost   = 5
)

// budget is a token bucket shared by every request of a Transport. It uses
// atomics so that the success path, which finds the bucket full, costs one
// load.
type budget struct {
	capacity int64
	cost     int64
	tokens   atomic.Int64
}

// newBudget returns a full bucket, or nil (no budget) when capacity or
// cost is not positive.
func newBudget(capacity, cost int) *budget {
	if capacity <= 0 || cost <= 0 {
		return nil
	}
	b := &budget{capacity: int64(capacity), cost: int64(cost)}
	b.tokens.Store(b.capacity)
	return b
}

// spend takes the cost of one retry and reports whether the bucket had
// it. A nil budget allows every retry.
func (b *budget) spend() bool {
	if b == nil {
		return true
	}
	for {
		cur := b.tokens.Load()
		if cur < b.cost {
			return false
		}
		if b.tokens.CompareAndSwap(cur, cur-b.cost) {
			return true
		}
	}
}

// earn returns tokens after a success: the cost of each retry that the
// request spent, or 1 when it needed none.
func (b *budget) earn(retries int) {
	if b == nil || b.tokens.Load() >= b.capacity {
		return
	}
	n := int64(1)
	if retries > 0 {
		n = int64(retries) * b.cost
	}
	for {
		cur := b.tokens.Load()
		next := min(b.capacity, cur+n)
		if b.tokens.CompareAndSwap(cur, next) {
			return
		}
	}
}

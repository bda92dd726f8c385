package xdrretry

import (
	"math"
	"testing"
	"time"
)

func TestRetryWait(t *testing.T) {
	p := defaultPolicy() // backoff cap 30s, maximum wait 2m
	noDeadline := time.Duration(math.MaxInt64)
	tests := []struct {
		name     string
		v        verdict
		next     time.Duration
		timeLeft time.Duration
		want     time.Duration
		ok       bool
	}{
		{"plain backoff", verdict{}, 3 * time.Second, noDeadline, 3 * time.Second, true},
		{"jitter above cap is capped", verdict{}, 45 * time.Second, noDeadline, 30 * time.Second, true},
		{"Retry-After above backoff", verdict{retryAfter: 10 * time.Second, hasRetryAfter: true}, time.Second, noDeadline, 10 * time.Second, true},
		{"Retry-After is a minimum", verdict{retryAfter: time.Second, hasRetryAfter: true}, 4 * time.Second, noDeadline, 4 * time.Second, true},
		{"Retry-After zero", verdict{retryAfter: 0, hasRetryAfter: true}, 2 * time.Second, noDeadline, 2 * time.Second, true},
		{"Retry-After above maximum wait", verdict{retryAfter: 5 * time.Minute, hasRetryAfter: true}, time.Second, noDeadline, 5 * time.Minute, false},
		{"Retry-After past deadline", verdict{retryAfter: 10 * time.Second, hasRetryAfter: true}, time.Second, 5 * time.Second, 10 * time.Second, false},
		{"backoff past deadline", verdict{}, 8 * time.Second, 5 * time.Second, 8 * time.Second, false},
		{"minute window caps backoff", verdict{window: 20 * time.Second}, 25 * time.Second, noDeadline, 20 * time.Second, true},
		{"minute window above backoff", verdict{window: time.Minute}, 2 * time.Second, noDeadline, 2 * time.Second, true},
		{"hourly window fails at once", verdict{window: time.Hour}, 2 * time.Second, noDeadline, time.Hour, false},
		{"Retry-After wins over window", verdict{retryAfter: 3 * time.Second, hasRetryAfter: true, window: time.Hour}, time.Second, noDeadline, 3 * time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := p.retryWait(tc.v, tc.next, tc.timeLeft)
			if got != tc.want {
				t.Errorf("wait = %v, want %v", got, tc.want)
			}
			if ok != tc.ok {
				t.Errorf("ok = %v, want %v", ok, tc.ok)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		want policy
	}{
		{"defaults", nil, defaultPolicy()},
		{"retries", []Option{WithMaxRetries(7)}, policy{maxRetries: 7, initialBackoff: time.Second, maxBackoff: 30 * time.Second, maxWait: 2 * time.Minute}},
		{"negative retries", []Option{WithMaxRetries(-1)}, policy{maxRetries: 0, initialBackoff: time.Second, maxBackoff: 30 * time.Second, maxWait: 2 * time.Minute}},
		{"backoff", []Option{WithBackoff(10*time.Millisecond, time.Second)}, policy{maxRetries: 4, initialBackoff: 10 * time.Millisecond, maxBackoff: time.Second, maxWait: 2 * time.Minute}},
		{"backoff max below initial", []Option{WithBackoff(5*time.Second, time.Second)}, policy{maxRetries: 4, initialBackoff: 5 * time.Second, maxBackoff: 5 * time.Second, maxWait: 2 * time.Minute}},
		{"backoff zero keeps defaults", []Option{WithBackoff(0, 0)}, defaultPolicy()},
		{"max wait", []Option{WithMaxWait(time.Hour)}, policy{maxRetries: 4, initialBackoff: time.Second, maxBackoff: 30 * time.Second, maxWait: time.Hour}},
		{"max wait zero keeps default", []Option{WithMaxWait(0)}, defaultPolicy()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := New(nil, tc.opts...).policy
			if got.maxRetries != tc.want.maxRetries || got.initialBackoff != tc.want.initialBackoff ||
				got.maxBackoff != tc.want.maxBackoff || got.maxWait != tc.want.maxWait {
				t.Errorf("policy = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBackoffGrows(t *testing.T) {
	p := defaultPolicy()
	b := p.newBackoff()
	// Means 1s, 2s, 4s, 8s, 16s, then the 30s cap; each within ±50%.
	means := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i, m := range means {
		mean := m * time.Second
		got := b.NextBackOff()
		if got < mean/2 || got > mean*3/2+time.Nanosecond {
			t.Errorf("wait %d = %v, want within ±50%% of %v", i+1, got, mean)
		}
	}
}

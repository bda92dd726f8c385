package xdrretry

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		values []string
		want   time.Duration
		ok     bool
	}{
		{"seconds", []string{"10"}, 10 * time.Second, true},
		{"zero", []string{"0"}, 0, true},
		{"fractional", []string{"0.249"}, 249 * time.Millisecond, true},
		{"spaces and quotes", []string{` "3" `}, 3 * time.Second, true},
		{"HTTP-date", []string{"Wed, 01 May 2024 10:00:30 GMT"}, 30 * time.Second, true},
		{"RFC 850 date", []string{"Wednesday, 01-May-24 10:01:00 GMT"}, time.Minute, true},
		{"asctime date", []string{"Wed May  1 10:00:05 2024"}, 5 * time.Second, true},
		{"past date", []string{"Wed, 01 May 2024 09:00:00 GMT"}, 0, true},
		{"merged seconds", []string{"5, 7"}, 7 * time.Second, true},
		{"repeated header", []string{"5", "9"}, 9 * time.Second, true},
		{"merged dates", []string{"Wed, 01 May 2024 10:00:10 GMT, Wed, 01 May 2024 10:00:20 GMT"}, 20 * time.Second, true},
		{"garbage and a number", []string{"soon, 4"}, 4 * time.Second, true},
		{"huge", []string{"99999999999999999999"}, maxHeaderWait, true},
		{"beyond float64", []string{strings.Repeat("9", 400)}, maxHeaderWait, true},
		{"empty", []string{""}, 0, false},
		{"missing", nil, 0, false},
		{"negative", []string{"-5"}, 0, false},
		{"exponent", []string{"1e3"}, 0, false},
		{"hex", []string{"0x10"}, 0, false},
		{"infinity", []string{"Inf"}, 0, false},
		{"two dots", []string{"1.2.3"}, 0, false},
		{"words", []string{"later"}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseRetryAfter(tc.values, now, time.Second)
			if ok != tc.ok {
				t.Errorf("ok = %v, want %v", ok, tc.ok)
			}
			if got != tc.want {
				t.Errorf("wait = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRetryAfterHeaderPrecedence(t *testing.T) {
	now := time.Now()
	h := http.Header{}
	h.Set("Retry-After", "10")
	h.Set("Retry-After-Ms", "1500")
	if got, _ := retryAfterFromHeader(h, now); got != 1500*time.Millisecond {
		t.Errorf("retry-after-ms: wait = %v, want 1.5s", got)
	}

	h.Del("Retry-After-Ms")
	h.Set("X-Ms-Retry-After-Ms", "250")
	if got, _ := retryAfterFromHeader(h, now); got != 250*time.Millisecond {
		t.Errorf("x-ms-retry-after-ms: wait = %v, want 250ms", got)
	}

	h.Set("X-Ms-Retry-After-Ms", "bogus")
	if got, _ := retryAfterFromHeader(h, now); got != 10*time.Second {
		t.Errorf("bogus ms header: wait = %v, want Retry-After's 10s", got)
	}
}

func TestQuotaWindow(t *testing.T) {
	tests := map[string]time.Duration{
		"API calls quota exceeded! maximum allowed 45 per 00:01:00":   time.Minute,
		"API calls quota exceeded! maximum allowed 1500 per 01:00:00": time.Hour,
		"maximum allowed 10 per 00:00:30":                             30 * time.Second,
		"Please retry again later.":                                   0,
		"per 1:00":                                                    0,
		"":                                                            0,
	}
	for msg, want := range tests {
		if got := quotaWindow(msg); got != want {
			t.Errorf("quotaWindow(%q) = %v, want %v", msg, got, want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, seed := range []string{
		"10", "0.249", "Wed, 21 Oct 2015 07:28:00 GMT", "5, 7", "", "-1", "1e9",
		"Wed, 21 Oct 2015 07:28:00 GMT, Thu, 22 Oct 2015 07:28:00 GMT", "Wed,", ",,,",
		"99999999999999999999999", "0.0000000001", "\"3\"",
	} {
		f.Add(seed)
	}
	now := time.Date(2015, 10, 21, 7, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, value string) {
		d, ok := parseRetryAfter([]string{value}, now, time.Second)
		if d < 0 || d > maxHeaderWait {
			t.Fatalf("parseRetryAfter(%q) = %v, outside [0, %v]", value, d, maxHeaderWait)
		}
		if !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v with ok false", value, d)
		}
	})
}

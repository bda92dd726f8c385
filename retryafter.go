package xdrretry

import (
	"errors"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// maxHeaderWait caps a parsed Retry-After so that absurd values cannot
// overflow time.Duration. Any wait this long is beyond every sane maximum
// wait, so the transport gives up on it at once.
const maxHeaderWait = 7 * 24 * time.Hour

// retryAfterFromHeader returns the minimum wait that the response's headers
// ask for. It reads retry-after-ms and x-ms-retry-after-ms (milliseconds,
// sent by some Azure services) before Retry-After (seconds or an HTTP-date,
// RFC 9110 section 10.2.3). Values that cannot be parsed are ignored.
func retryAfterFromHeader(h http.Header, now time.Time) (time.Duration, bool) {
	for _, key := range [...]string{"Retry-After-Ms", "X-Ms-Retry-After-Ms"} {
		if d, ok := parseRetryAfter(h[key], now, time.Millisecond); ok {
			return d, true
		}
	}
	return parseRetryAfter(h["Retry-After"], now, time.Second)
}

// parseRetryAfter parses Retry-After values: whole or fractional numbers of
// unit, or HTTP-dates. A header repeated or merged by a proxy ("5, 5", or
// two dates joined by a comma) yields the longest wait among its valid
// parts. A date in the past yields 0.
func parseRetryAfter(values []string, now time.Time, unit time.Duration) (time.Duration, bool) {
	var longest time.Duration
	found := false
	for _, value := range values {
		for _, part := range splitRetryAfter(value) {
			d, ok := parseRetryAfterPart(part, now, unit)
			if !ok {
				continue
			}
			found = true
			longest = max(longest, d)
		}
	}
	return longest, found
}

// splitRetryAfter splits a merged header value at commas, except the comma
// after the weekday of an HTTP-date such as "Wed, 21 Oct 2015 07:28:00 GMT".
func splitRetryAfter(value string) []string {
	pieces := strings.Split(value, ",")
	parts := pieces[:0]
	for i := 0; i < len(pieces); i++ {
		p := strings.TrimSpace(pieces[i])
		if isWeekday(p) && i+1 < len(pieces) {
			p += "," + pieces[i+1]
			i++
		}
		parts = append(parts, p)
	}
	return parts
}

func isWeekday(s string) bool {
	switch strings.ToLower(s) {
	case "mon", "tue", "wed", "thu", "fri", "sat", "sun",
		"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday":
		return true
	}
	return false
}

func parseRetryAfterPart(part string, now time.Time, unit time.Duration) (time.Duration, bool) {
	part = strings.Trim(strings.TrimSpace(part), `"`)
	if part == "" {
		return 0, false
	}
	if isDecimal(part) {
		n, err := strconv.ParseFloat(part, 64)
		if errors.Is(err, strconv.ErrRange) {
			// Too many digits for a float64: longer than any wait.
			return maxHeaderWait, true
		}
		if err != nil || math.IsNaN(n) {
			return 0, false
		}
		waitUnits := float64(maxHeaderWait) / float64(unit)
		if n >= waitUnits {
			return maxHeaderWait, true
		}
		return time.Duration(n * float64(unit)), true
	}
	if t, err := http.ParseTime(part); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return min(d, maxHeaderWait), true
	}
	return 0, false
}

// isDecimal reports whether s is digits with at most one decimal point, the
// only number syntax that Retry-After allows or services send. It rejects
// what strconv.ParseFloat would also accept: signs, exponents, hex, "Inf".
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// retryHintPattern finds the wait in the throttling message of the
// rate-limit policy of Azure API Management, which sends the body
// {"statusCode":429,"message":"Rate limit is exceeded. Try again in 60 seconds."}.
var retryHintPattern = regexp.MustCompile(`(?i)\btry again in (\d{1,9}) seconds?\b`)

// retryAfterFromMessage returns the wait that a throttling message names,
// for a response that has no Retry-After header.
func retryAfterFromMessage(message string) (time.Duration, bool) {
	m := retryHintPattern.FindStringSubmatch(message)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, false
	}
	return min(time.Duration(n)*time.Second, maxHeaderWait), true
}

// quotaPattern finds the window of a Defender quota message such as
// "API calls quota exceeded! maximum allowed 45 per 00:01:00".
var quotaPattern = regexp.MustCompile(`(?i)\bper\s+(\d{1,3}):([0-5]\d):([0-5]\d)\b`)

// quotaWindow returns the quota window named in a throttling message, or 0.
// The window is the longest wait after which the quota is certain to have
// refilled.
func quotaWindow(message string) time.Duration {
	m := quotaPattern.FindStringSubmatch(message)
	if m == nil {
		return 0
	}
	h, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	s, _ := strconv.Atoi(m[3])
	return time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second
}

package xdrretry

import (
	"log/slog"
	"net/url"
)

// logRetry logs a planned retry at Debug.
func (t *Transport) logRetry(c *call, ev RetryEvent) {
	l := c.policy.logger
	if l == nil || !l.Enabled(c.Context, slog.LevelDebug) {
		return
	}
	l.LogAttrs(c.Context, slog.LevelDebug, "retrying request",
		slog.String("method", requestMethod(c.req)),
		slog.String("url", redactURL(c.req.URL)),
		slog.Int("attempt", ev.Attempt),
		slog.Duration("wait", ev.Wait),
		slog.Int("status", ev.StatusCode),
		slog.String("code", ev.Code),
		slog.String("tracking_id", ev.TrackingID),
		slog.Bool("refresh", ev.Refresh),
		errAttr(ev.Err),
	)
}

// logGiveUp logs a final failure: at Warn when the transport gave up on a
// failure it retries or refreshes, and at Debug for a fail-fast status, a
// cancelled request or a request that could not be sent, which the caller
// handles from the returned error.
func (t *Transport) logGiveUp(c *call, e *Error) {
	l := c.policy.logger
	level := slog.LevelDebug
	switch e.reason {
	case reasonExhausted, reasonWait, reasonRefresh, reasonBudget:
		level = slog.LevelWarn
	}
	if l == nil || !l.Enabled(c.Context, level) {
		return
	}
	l.LogAttrs(c.Context, level, "request failed",
		slog.String("method", e.Method),
		slog.String("url", e.URL),
		slog.Int("attempts", e.Attempts),
		slog.Int("status", e.StatusCode),
		slog.String("code", e.Code),
		slog.String("tracking_id", e.TrackingID),
		slog.Duration("retry_after", e.RetryAfter),
		errAttr(e.Err),
	)
}

func errAttr(err error) slog.Attr {
	if err == nil {
		return slog.Attr{}
	}
	return slog.String("error", err.Error())
}

// redactURL returns u without its query, fragment and password. Queries of
// these APIs carry filters, not secrets, but they are long and a custom
// endpoint's query might carry a signature.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	v := *u
	v.RawQuery, v.ForceQuery, v.Fragment, v.RawFragment = "", false, "", ""
	return v.Redacted()
}

package xdrtest

import (
	"net/http"
	"time"
)

// Fault is an injected failure: an error response, a closed connection or
// a reset connection. Build one with a constructor such as [ErrorCode],
// [Throttle] or [Drop], then queue it with [Server.Script] or return it from
// the function given to [Server.SetFaultFunc].
//
// A Fault literal that sets only Status, Header and Body sends exactly that
// response, like [Raw]. A Fault is a value, so copies from [Fault.Times] and
// [Fault.WithHeader] can be queued and served concurrently.
type Fault struct {
	// Status is the HTTP status code. Zero means 500. Drop and Reset faults
	// send no status.
	Status int

	// Header holds response headers. They are applied after the headers
	// that the constructor's body shape sets, so they replace them.
	Header http.Header

	// Body is the response body of a raw fault. The constructors that build
	// an error envelope ignore it, because they generate the body for each
	// response with a fresh tracking ID.
	Body string

	// Drop closes the connection without writing a response.
	Drop bool

	// Reset closes the connection with a TCP RST. It takes precedence over
	// Drop.
	Reset bool

	// Delay is a wait before the fault is served. The wait ends early when
	// the client cancels the request or the server closes, and then no
	// response is sent.
	Delay time.Duration

	shape      bodyShape
	code       string // error code of an envelope shape
	message    string // error message of an envelope shape
	size       int    // body size of shapePadded
	stall      bool   // set by WithStall
	stallAfter int    // body bytes sent before the stall
}

// bodyShape selects how a fault's body is built when it is served.
type bodyShape int

const (
	shapeRaw      bodyShape = iota // Fault.Body as given
	shapeDefender                  // {"error":{"code","message","target"}}
	shapeGraph                     // {"error":{"code","message","innerError"}}
	shapeHTML                      // gateway error page
	shapePadded                    // Defender envelope padded to size bytes
)

// ErrorCode returns a fault that sends status with a Defender for Endpoint
// error envelope:
//
//	{"error":{"code":"<code>","message":"<message>","target":"<tracking ID>"}}
//
// Each response gets a fresh tracking ID in "target", which is where Defender
// puts it.
func ErrorCode(status int, code, message string) Fault {
	return Fault{Status: status, shape: shapeDefender, code: code, message: message}
}

// GraphError returns a fault that sends status with a Microsoft Graph error
// envelope:
//
//	{"error":{"code":"<code>","message":"<message>",
//	  "innerError":{"date":"...","request-id":"<ID>","client-request-id":"<ID>"}}}
//
// The request-id and client-request-id headers repeat the two IDs. Each
// response gets a fresh request-id. The client-request-id echoes the
// request's client-request-id header, as Graph does, and is fresh when the
// request has none.
func GraphError(status int, code, message string) Fault {
	return Fault{Status: status, shape: shapeGraph, code: code, message: message}
}

// Throttle returns a fault that sends 429 Too Many Requests with a Defender
// envelope of code "TooManyRequests" and a quota message that names a
// one-minute window. It sets the Retry-After header to retryAfter, which may
// be seconds or an HTTP date, unless retryAfter is "".
//
// Defender responses quoted in Microsoft's documentation feedback carry this
// message with the numeric code "429". ErrorCode(429, "429", message) builds
// that variant.
func Throttle(retryAfter string) Fault {
	f := ErrorCode(http.StatusTooManyRequests, "TooManyRequests",
		"API calls quota exceeded! maximum allowed 100 per 00:01:00")
	if retryAfter != "" {
		f = f.WithHeader("Retry-After", retryAfter)
	}
	return f
}

// HTML returns a fault that sends status with an HTML error page of the kind
// that a gateway (a load balancer, a CDN, an nginx proxy) sends in front of
// the API, with Content-Type text/html. The page and the X-Azure-Ref header
// carry a fresh tracking ID.
func HTML(status int) Fault {
	return Fault{Status: status, shape: shapeHTML}
}

// Drop returns a fault that hijacks the connection and closes it without
// writing a response, so the client reads EOF. The server first reads up to
// 1 MiB of the request body, so that unread data does not turn the close
// into a reset.
//
// net/http.Transport resends an idempotent request, such as a GET, on a new
// connection when a reused keep-alive connection closes before any response,
// so a client may never see the error. A fresh connection shows it.
func Drop() Fault {
	return Fault{Drop: true}
}

// Reset returns a fault that hijacks the connection and closes it with
// SO_LINGER set to 0, so the kernel sends a TCP RST and the client sees
// ECONNRESET. Like [Drop], it first reads up to 1 MiB of the request body,
// and net/http.Transport may resend an idempotent request that it sent on a
// reused connection.
func Reset() Fault {
	return Fault{Reset: true}
}

// Raw returns a fault that sends exactly status, header and body. It adds no
// tracking ID. When header has no Content-Type, net/http adds one detected
// from a non-empty body. When header declares a Content-Length larger than
// body, the server closes the connection after body, so the client reads a
// truncated body (io.ErrUnexpectedEOF).
func Raw(status int, header http.Header, body string) Fault {
	return Fault{Status: status, Header: header.Clone(), Body: body}
}

// LargeBody returns a fault that sends status with a Defender error envelope
// whose message is padded so that the body is size bytes long, with
// Content-Length set. The server streams the body in small chunks, so it
// never holds size bytes at once. When size is smaller than the envelope with
// an empty message (about 100 bytes), the body is that envelope.
func LargeBody(status int, size int) Fault {
	return Fault{Status: status, shape: shapePadded, code: statusCode(status), size: size}
}

// WithHeader returns a copy of f that sends the header key with value,
// replacing the value that f would send. f's Header is not modified.
func (f Fault) WithHeader(key, value string) Fault {
	h := f.Header.Clone()
	if h == nil {
		h = make(http.Header)
	}
	h.Set(key, value)
	f.Header = h
	return f
}

// WithDelay returns a copy of f that waits d before it is served.
func (f Fault) WithDelay(d time.Duration) Fault {
	f.Delay = d
	return f
}

// WithStall returns a copy of f whose body stops after n bytes. The server
// sends the headers, with the whole body's Content-Length, and the first n
// bytes. It then sends nothing more until the client cancels the request
// or the server closes, and closes the connection. This models a service
// or proxy that hangs in the middle of a response. It has no effect on
// Drop, Reset and LargeBody faults.
func (f Fault) WithStall(n int) Fault {
	f.stall = true
	f.stallAfter = max(n, 0)
	return f
}

// Times returns n copies of f, for Script(route, f.Times(3)...). It returns
// nil when n <= 0.
func (f Fault) Times(n int) []Fault {
	if n <= 0 {
		return nil
	}
	out := make([]Fault, n)
	for i := range out {
		out[i] = f
	}
	return out
}

// status returns the status to send, with 500 for an unset Status.
func (f *Fault) status() int {
	if f.Status == 0 {
		return http.StatusInternalServerError
	}
	return f.Status
}

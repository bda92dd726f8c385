package xdrtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// response is a complete response that the server is about to write. The
// handler builds it first and records it, then writes it, so a request's
// Record exists before the client can read the response.
type response struct {
	status     int
	header     http.Header
	body       []byte
	code       string // error code in the body, or ""
	trackingID string // tracking ID in the body or headers, or ""
}

const contentTypeJSON = "application/json; charset=utf-8"

// jsonResponse returns a response with v encoded as JSON.
func jsonResponse(status int, v any) response {
	body, err := json.Marshal(v)
	if err != nil {
		// Every value passed here is built from strings, numbers and times.
		panic(fmt.Sprintf("xdrtest: encode %T: %v", v, err))
	}
	return response{status: status, header: http.Header{"Content-Type": {contentTypeJSON}}, body: body}
}

// defenderError is the error envelope of the Defender for Endpoint API.
type defenderError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Target  string `json:"target"`
	} `json:"error"`
}

// errorResponse returns a Defender error envelope with a fresh tracking ID
// in "target".
func errorResponse(status int, code, message string) response {
	var env defenderError
	env.Error.Code = code
	env.Error.Message = message
	env.Error.Target = newUUID()
	resp := jsonResponse(status, env)
	resp.code = code
	resp.trackingID = env.Error.Target
	return resp
}

// graphError is the error envelope of Microsoft Graph.
type graphError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			Date            string `json:"date"`
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

// graphErrorResponse returns a Graph error envelope with a fresh request-id.
// The client-request-id echoes the request's header, else it is fresh.
func graphErrorResponse(r *http.Request, status int, code, message string) response {
	clientRequestID := r.Header.Get("client-request-id")
	if clientRequestID == "" {
		clientRequestID = newUUID()
	}
	var env graphError
	env.Error.Code = code
	env.Error.Message = message
	env.Error.InnerError.Date = time.Now().UTC().Format("2006-01-02T15:04:05")
	env.Error.InnerError.RequestID = newUUID()
	env.Error.InnerError.ClientRequestID = clientRequestID

	resp := jsonResponse(status, env)
	resp.header.Set("request-id", env.Error.InnerError.RequestID)
	resp.header.Set("client-request-id", clientRequestID)
	resp.code = code
	resp.trackingID = env.Error.InnerError.RequestID
	return resp
}

// htmlResponse returns a gateway error page with a fresh tracking ID in the
// page and in the X-Azure-Ref header.
func htmlResponse(status int) response {
	id := newUUID()
	title := html.EscapeString(strconv.Itoa(status) + " " + http.StatusText(status))
	page := "<!DOCTYPE html>\n<html>\n<head><title>" + title + "</title></head>\n<body>\n" +
		"<center><h1>" + title + "</h1></center>\n" +
		"<p>The server encountered a temporary error and could not complete your request.</p>\n" +
		"<p>Ref: " + id + "</p>\n" +
		"<hr><center>gateway</center>\n</body>\n</html>\n"
	return response{
		status:     status,
		header:     http.Header{"Content-Type": {"text/html"}, "X-Azure-Ref": {id}},
		body:       []byte(page),
		trackingID: id,
	}
}

// faultResponse builds the response of a fault that has one, which is every
// fault except Drop, Reset and LargeBody.
func faultResponse(r *http.Request, f *Fault) response {
	var resp response
	switch f.shape {
	case shapeDefender:
		resp = errorResponse(f.status(), f.code, f.message)
	case shapeGraph:
		resp = graphErrorResponse(r, f.status(), f.code, f.message)
	case shapeHTML:
		resp = htmlResponse(f.status())
	default:
		resp = response{status: f.status(), header: http.Header{}, body: []byte(f.Body)}
	}
	for key, values := range f.Header {
		// Copy the values, because copies of f share its Header.
		resp.header[key] = append([]string(nil), values...)
	}
	return resp
}

// write sends resp. Errors from a client that went away are ignored, as
// net/http does.
func (resp *response) write(w http.ResponseWriter) {
	h := w.Header()
	for key, values := range resp.header {
		h[key] = values
	}
	if _, ok := h["Content-Length"]; !ok {
		h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	}
	w.WriteHeader(resp.status)
	w.Write(resp.body)
}

// newUUID returns a random UUID version 4 from crypto/rand, formatted
// 8-4-4-4-12, as Defender and Graph format tracking IDs.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])         // crypto/rand.Read never returns an error since Go 1.24.
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant

	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}

// statusCode returns an error code for status in the style of Defender's
// codes, such as "NotFound" for 404 and "TooManyRequests" for 429.
func statusCode(status int) string {
	text := http.StatusText(status)
	if text == "" {
		return "UnknownError"
	}
	return strings.Join(strings.FieldsFunc(text, func(r rune) bool {
		return r == ' ' || r == '-' || r == '\''
	}), "")
}

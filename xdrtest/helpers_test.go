package xdrtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xdrretry/xdrretry/xdrtest"
)

// uuidV4 matches a lower-case version 4 UUID with the RFC 9562 variant.
var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// start returns a started server that is closed when the test ends, and a
// token that it accepts for an hour.
func start(t *testing.T) (*xdrtest.Server, string) {
	t.Helper()
	srv := xdrtest.NewServer()
	t.Cleanup(srv.Close)
	return srv, srv.IssueToken(time.Hour)
}

// freshClient returns a client that opens a new connection for every
// request, so that net/http.Transport never resends a request after a
// dropped or reset connection. It trusts srv's certificate after StartTLS.
func freshClient(t *testing.T, srv *xdrtest.Server) *http.Client {
	t.Helper()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// reply is a response with its body read.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// send sends a request with an optional bearer token and JSON body and
// reads the whole response. It fails the test on a transport error.
func send(t *testing.T, client *http.Client, method, url, token, body string) reply {
	t.Helper()
	resp, err := sendErr(client, method, url, token, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

// sendErr is send that returns the transport error instead.
func sendErr(client *http.Client, method, url, token, body string) (reply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// defenderEnvelope is the Defender error envelope.
type defenderEnvelope struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Target  string `json:"target"`
	} `json:"error"`
}

// decodeEnvelope decodes a Defender error envelope and checks that its
// target is a tracking ID.
func decodeEnvelope(t *testing.T, body []byte) defenderEnvelope {
	t.Helper()
	var env defenderEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("body is not a Defender error envelope: %v\n%s", err, body)
	}
	if !uuidV4.MatchString(env.Error.Target) {
		t.Errorf("target = %q, want a UUID v4 tracking ID", env.Error.Target)
	}
	return env
}

// checkError checks that r is a Defender error with status and code, and
// returns the envelope.
func checkError(t *testing.T, r reply, status int, code string) defenderEnvelope {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	env := decodeEnvelope(t, r.body)
	if env.Error.Code != code {
		t.Errorf("code = %q, want %q; message %q", env.Error.Code, code, env.Error.Message)
	}
	if env.Error.Message == "" {
		t.Error("message is empty")
	}
	return env
}

// decodeJSON decodes body into a value of type T.
func decodeJSON[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, body)
	}
	return v
}

// checkRecord checks a record's Status, Fault and Dropped fields.
func checkRecord(t *testing.T, rec xdrtest.Record, status int, fault, dropped bool) {
	t.Helper()
	if rec.Status != status {
		t.Errorf("record Status = %d, want %d", rec.Status, status)
	}
	if rec.Fault != fault {
		t.Errorf("record Fault = %v, want %v", rec.Fault, fault)
	}
	if rec.Dropped != dropped {
		t.Errorf("record Dropped = %v, want %v", rec.Dropped, dropped)
	}
}

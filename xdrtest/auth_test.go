package xdrtest_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xdrretry/xdrretry/xdrtest"
)

func TestAuth(t *testing.T) {
	srv, valid := start(t)
	expired := srv.IssueToken(time.Hour)
	srv.ExpireToken(expired)
	revoked := srv.IssueToken(time.Hour)
	srv.RevokeToken(revoked)

	const expiredChallenge = `Bearer error="invalid_token", error_description="The access token expired"`
	tests := []struct {
		name          string
		authorization string // the Authorization header, or "" for none
		wantStatus    int
		wantMessage   string // a substring of the error message
		wantChallenge string
	}{
		{"valid token", "Bearer " + valid, 200, "", ""},
		{"lower-case scheme", "bearer " + valid, 200, "", ""},
		{"missing header", "", 401, "no bearer access token", "Bearer"},
		{"other scheme", "Basic dXNlcjpwYXNz", 401, "no bearer access token", "Bearer"},
		{"empty token", "Bearer ", 401, "no bearer access token", "Bearer"},
		{"unknown token", "Bearer not-issued", 401, "access token is invalid",
			`Bearer error="invalid_token", error_description="The access token is invalid"`},
		{"revoked token", "Bearer " + revoked, 401, "access token is invalid",
			`Bearer error="invalid_token", error_description="The access token is invalid"`},
		{"expired by ExpireToken", "Bearer " + expired, 401, "the access token expired", expiredChallenge},
		{"expired by TTL", "Bearer " + srv.IssueToken(-time.Second), 401, "the access token expired", expiredChallenge},
		{"expired unknown token", "Bearer " + expireUnknown(srv, "never-issued"), 401, "the access token expired", expiredChallenge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", srv.URL+"/api/machines", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r := readReply(t, resp)
			if tt.wantStatus == 200 {
				if r.status != 200 {
					t.Errorf("status = %d, want 200; body %s", r.status, r.body)
				}
				return
			}
			env := checkError(t, r, 401, "Unauthorized")
			if !strings.Contains(env.Error.Message, tt.wantMessage) {
				t.Errorf("message = %q, want it to contain %q", env.Error.Message, tt.wantMessage)
			}
			if got := r.header.Get("WWW-Authenticate"); got != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChallenge)
			}
		})
	}
}

func expireUnknown(srv *xdrtest.Server, token string) string {
	srv.ExpireToken(token)
	return token
}

func readReply(t *testing.T, resp *http.Response) reply {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

func TestIssueTokenIsRandom(t *testing.T) {
	srv, _ := start(t)
	seen := map[string]bool{}
	for range 100 {
		token := srv.IssueToken(time.Hour)
		if len(token) < 20 {
			t.Errorf("token %q is shorter than 20 characters", token)
		}
		if seen[token] {
			t.Errorf("token %q was issued twice", token)
		}
		seen[token] = true
	}
}

func TestSetAuthFalse(t *testing.T) {
	srv, _ := start(t)
	srv.SetAuth(false)
	r := send(t, srv.Client(), "GET", srv.URL+"/api/machines", "", "")
	if r.status != 200 {
		t.Errorf("status without a token = %d, want 200", r.status)
	}

	srv.SetAuth(true)
	r = send(t, srv.Client(), "GET", srv.URL+"/api/machines", "", "")
	checkError(t, r, 401, "Unauthorized")
}

func TestFaultComesBeforeAuth(t *testing.T) {
	srv, _ := start(t)
	srv.Script("/api/machines", xdrtest.ErrorCode(503, "ServiceUnavailable", "down"))

	r := send(t, srv.Client(), "GET", srv.URL+"/api/machines", "", "")
	checkError(t, r, 503, "ServiceUnavailable")

	r = send(t, srv.Client(), "GET", srv.URL+"/api/machines", "", "")
	checkError(t, r, 401, "Unauthorized")
}

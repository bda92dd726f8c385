package xdrretry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/xdrretry/xdrretry"
	"github.com/xdrretry/xdrretry/xdrtest"
)

// A plain client: the transport retries a 500 and returns the response.
func Example() {
	api := xdrtest.NewServer()
	defer api.Close()
	token := api.IssueToken(time.Hour)
	api.Script("GET /api/machines", xdrtest.ErrorCode(500, "InternalServerError", "An unexpected error occurred"))

	client := &http.Client{Transport: xdrretry.New(nil, xdrretry.WithBackoff(10*time.Millisecond, 100*time.Millisecond))}

	req, _ := http.NewRequest(http.MethodGet, api.URL+"/api/machines", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "after", api.Count("GET /api/machines"), "attempts")
	// Output: 200 OK after 2 attempts
}

// Read the code and the tracking ID, which Microsoft support requests,
// from a failed call.
func ExampleError() {
	api := xdrtest.NewServer()
	defer api.Close()
	client := &http.Client{Transport: xdrretry.New(nil)}

	req, _ := http.NewRequest(http.MethodGet, api.URL+"/api/machines/unknown", nil)
	req.Header.Set("Authorization", "Bearer "+api.IssueToken(time.Hour))
	_, err := client.Do(req)

	var xerr *xdrretry.Error
	if errors.As(err, &xerr) {
		fmt.Println("status:", xerr.StatusCode)
		fmt.Println("code:", xerr.Code)
		fmt.Println("tracking ID is the server's:", xerr.TrackingID == api.Requests()[0].TrackingID)
		fmt.Println("errors.Is NotFound:", errors.Is(err, xdrretry.ErrNotFound))
	}
	// Output:
	// status: 404
	// code: NotFound
	// tracking ID is the server's: true
	// errors.Is NotFound: true
}

// Refresh an expired token through the client credentials flow of
// golang.org/x/oauth2, with oauth2.Transport keeping the cached token.
func ExampleRefreshFromTokenFunc() {
	api := xdrtest.NewServer()
	defer api.Close()
	// A stand-in for the Entra ID token endpoint, on loopback.
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": api.IssueToken(time.Hour), "token_type": "Bearer", "expires_in": 3600})
	}))
	defer endpoint.Close()

	ctx := context.Background()
	cfg := &clientcredentials.Config{
		ClientID:     "app-id",
		ClientSecret: "secret",
		TokenURL:     endpoint.URL, // https://login.microsoftonline.com/TENANT/oauth2/v2.0/token
		Scopes:       []string{"https://api.securitycenter.microsoft.com/.default"},
	}
	src := cfg.TokenSource(ctx)
	client := &http.Client{Transport: &oauth2.Transport{
		Source: src,
		Base:   xdrretry.New(nil, xdrretry.WithTokenRefresh(xdrretry.RefreshFromTokenFunc(cfg.Token))),
	}}

	cached, _ := src.Token()
	api.ExpireToken(cached.AccessToken) // revoked before its expiry time

	resp, err := client.Get(api.URL + "/api/alerts")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}

// Log retries and give-ups with log/slog. Without WithLogger the transport
// logs nothing.
func ExampleWithLogger() {
	api := xdrtest.NewServer()
	defer api.Close()
	api.Script("GET /api/alerts", xdrtest.Throttle("0"))

	handler := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		// Keep the output stable: drop the time, the URL's random port,
		// the random tracking ID and the jittered wait.
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "url", "tracking_id", "wait":
				return slog.Attr{}
			}
			return a
		},
	})
	client := &http.Client{Transport: xdrretry.New(nil,
		xdrretry.WithLogger(slog.New(handler)),
		xdrretry.WithBackoff(time.Millisecond, time.Millisecond),
	)}

	req, _ := http.NewRequest(http.MethodGet, api.URL+"/api/alerts", nil)
	req.Header.Set("Authorization", "Bearer "+api.IssueToken(time.Hour))
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	// Output:
	// level=DEBUG msg="retrying request" method=GET attempt=1 status=429 code=TooManyRequests refresh=false
}

package xdrretry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/xdrretry/xdrretry"
	"github.com/xdrretry/xdrretry/xdrtest"
)

// A failed call returns an *xdrretry.Error with the code and the tracking
// ID to quote to Microsoft support.
func Example() {
	srv := xdrtest.NewServer()
	defer srv.Close()
	token := srv.IssueToken(time.Hour)

	// The first attempt meets a 500; the transport retries it.
	srv.Script("GET /api/machines", xdrtest.ErrorCode(500, "InternalServerError", "An unexpected error occurred"))

	client := &http.Client{Transport: xdrretry.New(nil,
		xdrretry.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
		xdrretry.WithTokenRefresh(func(ctx context.Context, rejected *xdrretry.Error) (string, error) {
			return srv.IssueToken(time.Hour), nil
		}),
	)}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/machines", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("machines:", resp.Status)

	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/api/machines/unknown", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	_, err = client.Do(req)
	var xerr *xdrretry.Error
	if errors.As(err, &xerr) {
		fmt.Println("code:", xerr.Code)
		fmt.Println("has tracking ID:", xerr.TrackingID == srv.Requests()[2].TrackingID)
		fmt.Println("not found:", errors.Is(err, xdrretry.ErrNotFound))
	}
	// Output:
	// machines: 200 OK
	// code: NotFound
	// has tracking ID: true
	// not found: true
}

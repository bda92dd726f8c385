package xdrtest_test

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/xdrretry/xdrretry/xdrtest"
)

func Example() {
	srv := xdrtest.NewServer()
	defer srv.Close()
	token := srv.IssueToken(time.Hour)

	// The first two requests for the machine list are throttled.
	srv.Script("GET /api/machines", xdrtest.Throttle("1").Times(2)...)

	for range 3 {
		req, _ := http.NewRequest("GET", srv.URL+"/api/machines", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Printf("%d Retry-After=%q\n", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	fmt.Println("requests:", srv.Count("GET /api/machines"))
	fmt.Println("connections:", srv.Connections())
	// Output:
	// 429 Retry-After="1"
	// 429 Retry-After="1"
	// 200 Retry-After=""
	// requests: 3
	// connections: 1
}

func ExampleServer_SetFaultFunc() {
	srv := xdrtest.NewServer()
	defer srv.Close()
	srv.SetAuth(false)

	// Fail every third request with a gateway error page.
	n := 0
	srv.SetFaultFunc(func(r *http.Request) (xdrtest.Fault, bool) {
		n++ // safe here because the example sends one request at a time
		if n%3 == 0 {
			return xdrtest.HTML(502), true
		}
		return xdrtest.Fault{}, false
	})

	var statuses []int
	for range 6 {
		resp, err := srv.Client().Get(srv.URL + "/api/alerts")
		if err != nil {
			fmt.Println(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	fmt.Println(statuses)
	// Output:
	// [200 200 502 200 200 502]
}

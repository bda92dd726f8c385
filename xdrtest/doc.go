// Package xdrtest provides a fake Microsoft Defender for Endpoint API for
// tests, in the spirit of net/http/httptest. A [Server] listens on loopback
// only and serves fixed machines and alerts, advanced hunting queries and
// machine actions (isolate, offboard) in the JSON shapes of the real API,
// including its error envelope:
//
//	{"error":{"code":"NotFound","message":"...","target":"<tracking ID>"}}
//
// Every error response carries a fresh random tracking ID.
//
// Tests inject failures with [Server.Script], which queues faults per route,
// or with [Server.SetFaultFunc] for random faults. [Server.Requests],
// [Server.Count] and [Server.Connections] show what the server saw.
//
// The server handles each request in this order:
//
//  1. the next fault queued by Script for a matching route;
//  2. else the fault from the SetFaultFunc function, if it returns one;
//  3. else the authentication check: the Authorization header must be
//     "Bearer <token>" with an unexpired token from [Server.IssueToken],
//     unless [Server.SetAuth](false) turned the check off;
//  4. else the resource.
//
// Faults come before authentication because they model a gateway or the
// service failing before it checks the token.
//
// The resources are:
//
//	GET  /api/machines                 GET  /api/alerts
//	GET  /api/machines/{id}            GET  /api/alerts/{id}
//	POST /api/machines/{id}/isolate    GET  /api/machineactions
//	POST /api/machines/{id}/offboard   GET  /api/machineactions/{id}
//	POST /api/advancedqueries/run
//
// Query options such as $filter and $top are ignored. Any other path gets
// 404 "NotFound", and a known path with another method gets 405
// "MethodNotAllowed".
//
// A test that checks retries on throttling might read:
//
//	srv := xdrtest.NewServer()
//	defer srv.Close()
//	token := srv.IssueToken(time.Hour)
//	srv.Script("GET /api/machines", xdrtest.Throttle("1").Times(2)...)
//
//	req, _ := http.NewRequest("GET", srv.URL+"/api/machines", nil)
//	req.Header.Set("Authorization", "Bearer "+token)
//	resp, err := client.Do(req) // client is the retrying client under test
//	// Expect 200 after three requests: srv.Count("GET /api/machines") == 3.
package xdrtest

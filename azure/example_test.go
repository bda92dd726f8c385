package azure_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/xdrretry/xdrretry"
	"github.com/xdrretry/xdrretry/azure"
	"github.com/xdrretry/xdrretry/xdrtest"
)

// fakeCredential replaces an azidentity credential here: it issues tokens
// of the fake API and returns its cached token unless asked for claims.
type fakeCredential struct {
	api   *xdrtest.Server
	token string
}

func (c *fakeCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if c.token == "" || opts.Claims != "" {
		c.token = c.api.IssueToken(time.Hour)
	}
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func ExampleNewTransport() {
	api := xdrtest.NewUnstartedServer()
	api.StartTLS()
	defer api.Close()
	api.Script("GET /api/alerts", xdrtest.ErrorCode(500, "InternalServerError", "An unexpected error occurred"))

	// In a program, cred is an azidentity credential, such as the one from
	// azidentity.NewClientSecretCredential(tenantID, clientID, secret, nil),
	// and base is nil.
	cred := &fakeCredential{api: api}
	base := api.Client().Transport
	client := &http.Client{Transport: azure.NewTransport(cred, base, []string{azure.DefenderScope},
		xdrretry.WithBackoff(time.Millisecond, time.Millisecond), // short waits for the example
	)}

	resp, err := client.Get(api.URL + "/api/alerts")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "after", api.Count("GET /api/alerts"), "requests")

	// A token that the API rejects is replaced by a new one from cred.
	api.ExpireToken(cred.token)
	resp, err = client.Get(api.URL + "/api/alerts")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "after a token refresh")
	// Output:
	// 200 OK after 2 requests
	// 200 OK after a token refresh
}

func ExampleNewTransport_pipeline() {
	api := xdrtest.NewUnstartedServer()
	api.StartTLS()
	defer api.Close()

	cred := &fakeCredential{api: api}
	pl := runtime.NewPipeline("mymodule", "v1.0.0", runtime.PipelineOptions{}, &policy.ClientOptions{
		// xdrretry retries, so azcore must not.
		Retry: policy.RetryOptions{MaxRetries: -1},
		Transport: &http.Client{Transport: azure.NewTransport(cred, api.Client().Transport, []string{azure.DefenderScope},
			// Return a failed response with its body, for NewResponseError.
			xdrretry.WithErrorResponses(true),
		)},
	})

	req, err := runtime.NewRequest(context.Background(), http.MethodGet, api.URL+"/api/machines/no-such-machine")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := pl.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	if !runtime.HasStatusCode(resp, http.StatusOK) {
		var respErr *azcore.ResponseError
		if errors.As(runtime.NewResponseError(resp), &respErr) {
			fmt.Println(respErr.StatusCode, respErr.ErrorCode, "after", len(api.Requests()), "request")
		}
	}
	// Output:
	// 404 NotFound after 1 request
}

package graph_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoft/kiota-abstractions-go/authentication"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	khttp "github.com/microsoft/kiota-http-go"
	jsonserialization "github.com/microsoft/kiota-serialization-json-go"
	"github.com/xdrretry/xdrretry"
	"github.com/xdrretry/xdrretry/graph"
	"github.com/xdrretry/xdrretry/xdrtest"
)

// staticToken is a Kiota AccessTokenProvider with one token.
type staticToken string

func (s staticToken) GetAuthorizationToken(context.Context, *url.URL, map[string]any) (string, error) {
	return string(s), nil
}

func (staticToken) GetAllowedHostsValidator() *authentication.AllowedHostsValidator {
	v, _ := authentication.NewAllowedHostsValidatorErrorCheck([]string{"127.0.0.1", "::1"})
	return v
}

// alertTitle is a Kiota model that reads the title of a Defender alert.
type alertTitle struct{ title *string }

func (a *alertTitle) GetFieldDeserializers() map[string]func(absser.ParseNode) error {
	return map[string]func(absser.ParseNode) error{
		"title": func(n absser.ParseNode) error {
			v, err := n.GetStringValue()
			a.title = v
			return err
		},
	}
}

func (a *alertTitle) Serialize(absser.SerializationWriter) error { return nil }

func ExampleNewHTTPClient() {
	api := xdrtest.NewServer()
	defer api.Close()
	api.Script("GET /api/alerts/{id}", xdrtest.ErrorCode(500, "InternalServerError", "An unexpected error occurred"))

	tr := xdrretry.New(nil,
		xdrretry.WithErrorResponses(true),                        // Kiota parses error bodies itself
		xdrretry.WithBackoff(time.Millisecond, time.Millisecond), // short waits for the example
	)
	auth := authentication.NewBaseBearerTokenAuthenticationProvider(staticToken(api.IssueToken(time.Hour)))
	adapter, err := khttp.NewNetHttpRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(
		auth, jsonserialization.NewJsonParseNodeFactory(), jsonserialization.NewJsonSerializationWriterFactory(),
		graph.NewHTTPClient(tr))
	if err != nil {
		fmt.Println(err)
		return
	}
	adapter.SetBaseUrl(api.URL)

	get := func(id string) (*alertTitle, error) {
		info := abs.NewRequestInformationWithMethodAndUrlTemplateAndPathParameters(
			abs.GET, "{+baseurl}/api/alerts/{id}", map[string]string{"id": id})
		res, err := adapter.Send(context.Background(), info,
			func(absser.ParseNode) (absser.Parsable, error) { return &alertTitle{}, nil }, nil)
		if err != nil {
			return nil, err
		}
		return res.(*alertTitle), nil
	}

	// The 500 heals: one call, two requests.
	a, err := get(api.Alerts()[0].ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%q after %d requests\n", *a.title, api.Count("GET /api/alerts/{id}"))

	// A 404 fails at once with Kiota's error.
	_, err = get("no-such-alert")
	var apiErr *abs.ApiError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.ResponseStatusCode, "after", api.Count("GET /api/alerts/no-such-alert"), "request")
	}
	// Output:
	// "Suspicious PowerShell command line" after 2 requests
	// 404 after 1 request
}

package graph

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"testing"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoft/kiota-abstractions-go/authentication"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	khttp "github.com/microsoft/kiota-http-go"
	jsonserialization "github.com/microsoft/kiota-serialization-json-go"
)

// The Kiota models below stand in for the code that Kiota generates for an
// API. They parse only the properties that the tests read.

// alert is a Defender alert.
type alert struct {
	id    *string
	title *string
}

func newAlert(absser.ParseNode) (absser.Parsable, error) { return &alert{}, nil }

func (a *alert) GetFieldDeserializers() map[string]func(absser.ParseNode) error {
	return map[string]func(absser.ParseNode) error{
		"id":    stringField(&a.id),
		"title": stringField(&a.title),
	}
}

func (a *alert) Serialize(w absser.SerializationWriter) error {
	if err := w.WriteStringValue("id", a.id); err != nil {
		return err
	}
	return w.WriteStringValue("title", a.title)
}

// odataError is the error envelope that Defender and Graph share:
//
//	{"error":{"code","message","target","innerError":{"request-id"}}}
//
// Defender puts its tracking ID in "target", Graph in innerError's
// "request-id". Embedding abs.ApiError lets Kiota set the status and the
// response headers.
type odataError struct {
	abs.ApiError
	main *mainError
}

func newODataError(absser.ParseNode) (absser.Parsable, error) { return &odataError{}, nil }

func (e *odataError) Error() string {
	if e.main == nil {
		return "odata error without an error object"
	}
	return deref(e.main.code) + ": " + deref(e.main.message)
}

func (e *odataError) GetFieldDeserializers() map[string]func(absser.ParseNode) error {
	return map[string]func(absser.ParseNode) error{
		"error": func(n absser.ParseNode) error {
			v, err := n.GetObjectValue(newMainError)
			if v != nil {
				e.main = v.(*mainError)
			}
			return err
		},
	}
}

func (e *odataError) Serialize(absser.SerializationWriter) error { return nil }

// Code returns the error code, or "".
func (e *odataError) Code() string {
	if e.main == nil {
		return ""
	}
	return deref(e.main.code)
}

// TrackingID returns Graph's innerError request-id, else Defender's target.
func (e *odataError) TrackingID() string {
	if e.main == nil {
		return ""
	}
	if e.main.inner != nil && deref(e.main.inner.requestID) != "" {
		return deref(e.main.inner.requestID)
	}
	return deref(e.main.target)
}

type mainError struct {
	code, message, target *string
	inner                 *innerError
}

func newMainError(absser.ParseNode) (absser.Parsable, error) { return &mainError{}, nil }

func (m *mainError) GetFieldDeserializers() map[string]func(absser.ParseNode) error {
	return map[string]func(absser.ParseNode) error{
		"code":    stringField(&m.code),
		"message": stringField(&m.message),
		"target":  stringField(&m.target),
		"innerError": func(n absser.ParseNode) error {
			v, err := n.GetObjectValue(newInnerError)
			if v != nil {
				m.inner = v.(*innerError)
			}
			return err
		},
	}
}

func (m *mainError) Serialize(absser.SerializationWriter) error { return nil }

type innerError struct {
	requestID *string
}

func newInnerError(absser.ParseNode) (absser.Parsable, error) { return &innerError{}, nil }

func (i *innerError) GetFieldDeserializers() map[string]func(absser.ParseNode) error {
	return map[string]func(absser.ParseNode) error{
		"request-id": stringField(&i.requestID),
	}
}

func (i *innerError) Serialize(absser.SerializationWriter) error { return nil }

func stringField(dst **string) func(absser.ParseNode) error {
	return func(n absser.ParseNode) error {
		v, err := n.GetStringValue()
		*dst = v
		return err
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// errorMappings maps every error status to odataError, as Kiota generates
// for an API whose errors share one envelope.
var errorMappings = abs.ErrorMappings{"XXX": newODataError}

// tokenProvider is a Kiota AccessTokenProvider that returns the token
// from its function, such as a cached token. It records the claims that
// Kiota passes after a 401 with a claims challenge.
type tokenProvider struct {
	token func() string

	mu     sync.Mutex
	claims []string
}

func (p *tokenProvider) GetAuthorizationToken(_ context.Context, _ *url.URL, extra map[string]any) (string, error) {
	if claims, ok := extra["claims"].(string); ok {
		p.mu.Lock()
		p.claims = append(p.claims, claims)
		p.mu.Unlock()
	}
	return p.token(), nil
}

// Claims returns the claims of the calls so far that had any.
func (p *tokenProvider) Claims() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.claims...)
}

func (p *tokenProvider) GetAllowedHostsValidator() *authentication.AllowedHostsValidator {
	v, _ := authentication.NewAllowedHostsValidatorErrorCheck([]string{"127.0.0.1", "::1"})
	return v
}

// newAdapter returns Kiota's NetHttpRequestAdapter over client, with
// bearer tokens from token and JSON parsing.
func newAdapter(t *testing.T, client *http.Client, token func() string) *khttp.NetHttpRequestAdapter {
	t.Helper()
	return newAdapterWithProvider(t, client, &tokenProvider{token: token})
}

func newAdapterWithProvider(t *testing.T, client *http.Client, provider *tokenProvider) *khttp.NetHttpRequestAdapter {
	t.Helper()
	auth := authentication.NewBaseBearerTokenAuthenticationProvider(provider)
	adapter, err := khttp.NewNetHttpRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(
		auth, jsonserialization.NewJsonParseNodeFactory(), jsonserialization.NewJsonSerializationWriterFactory(), client)
	if err != nil {
		t.Fatalf("NewNetHttpRequestAdapter: %v", err)
	}
	return adapter
}

// getAlert sends GET rawURL through adapter as generated Kiota code does.
func getAlert(ctx context.Context, t *testing.T, adapter abs.RequestAdapter, rawURL string, opts ...abs.RequestOption) (*alert, error) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	info := abs.NewRequestInformation()
	info.Method = abs.GET
	info.SetUri(*u)
	info.Headers.TryAdd("Accept", "application/json")
	info.AddRequestOptions(opts)
	res, err := adapter.Send(ctx, info, newAlert, errorMappings)
	if err != nil {
		return nil, err
	}
	a, _ := res.(*alert)
	return a, nil
}

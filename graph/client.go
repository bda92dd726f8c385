package graph

import (
	"net/http"

	khttp "github.com/microsoft/kiota-http-go"
	"github.com/xdrretry/xdrretry"
)

// NewHTTPClient returns an [http.Client] for Kiota's NetHttpRequestAdapter
// that runs Kiota's middleware pipeline over t, the xdrretry transport.
//
// The pipeline contains middlewares, or Kiota's defaults
// (khttp.GetDefaultMiddlewares) when none are given, without any
// khttp.RetryHandler among them: xdrretry retries, and both layers
// retrying would multiply the attempts. The other middlewares stay, among
// them the redirect handler, the compression handler, the user agent
// handler and the headers inspection handler. To keep the Graph SDK's own
// middlewares, pass msgraphgocore.GetDefaultMiddlewaresWithOptions(&options)...,
// which contains Kiota's defaults.
//
// A nil t means xdrretry.New(nil, xdrretry.WithErrorResponses(true)). A t
// of your own should also be made with WithErrorResponses(true), so that
// Kiota gets each failed response and parses its error body into the error
// types of its error mappings. Without it, Kiota returns the
// *xdrretry.Error, wrapped in a *url.Error, for every failure.
//
// The client hands redirects to Kiota's redirect handler instead of
// following them itself, as Kiota's own default client does. Unlike that
// client, it sets no Timeout (100 s in kiota-http-go v1.5.4), because retries and their
// waits, or an advanced hunting query, can take longer: bound a call with
// its context instead.
//
// Kiota's NetHttpRequestAdapter also resends a request once by itself
// when a 401 carries a continuous access evaluation claims challenge, with
// a token from its authentication provider for those claims. With a
// refresh function, xdrretry handles such a 401 first. Kiota receives the
// 401, and resends, only when xdrretry has no refresh function or the
// refreshed token was rejected too. When the refresh function fails, Kiota
// receives the *xdrretry.Error instead, because no response is left.
func NewHTTPClient(t http.RoundTripper, middlewares ...khttp.Middleware) *http.Client {
	if t == nil {
		t = xdrretry.New(nil, xdrretry.WithErrorResponses(true))
	}
	if len(middlewares) == 0 {
		middlewares = khttp.GetDefaultMiddlewares()
	}
	filtered := withoutRetryHandlers(middlewares)

	// NewCustomTransportWithParentTransport replaces an empty list with
	// Kiota's defaults, which include a RetryHandler.
	transport := t
	if len(filtered) > 0 {
		transport = khttp.NewCustomTransportWithParentTransport(t, filtered...)
	}
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// withoutRetryHandlers returns a copy of middlewares without its
// RetryHandlers. RetryHandler has value receivers, so both it and a
// pointer to it are Middlewares.
func withoutRetryHandlers(middlewares []khttp.Middleware) []khttp.Middleware {
	filtered := make([]khttp.Middleware, 0, len(middlewares))
	for _, m := range middlewares {
		switch m.(type) {
		case *khttp.RetryHandler, khttp.RetryHandler:
			continue
		}
		filtered = append(filtered, m)
	}
	return filtered
}

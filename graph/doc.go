// Package graph plugs xdrretry into Kiota clients, such as the Microsoft
// Graph SDK for Go (msgraph-sdk-go), whose NetHttpRequestAdapter sends
// requests through a middleware pipeline that has a retry handler of its
// own.
//
// It is a module of its own, github.com/xdrretry/xdrretry/graph, so that
// programs that import only xdrretry do not download Kiota.
//
// [NewHTTPClient] builds Kiota's pipeline over the xdrretry transport
// without Kiota's RetryHandler:
//
//	tr := xdrretry.New(nil,
//		xdrretry.WithErrorResponses(true), // Kiota parses error bodies itself
//		xdrretry.WithTokenRefresh(refresh),
//	)
//	adapter, err := khttp.NewNetHttpRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(
//		authProvider, nil, nil, graph.NewHTTPClient(tr))
//
// For the Graph SDK, pass its middlewares and its adapter constructor:
//
//	client := graph.NewHTTPClient(tr, msgraphgocore.GetDefaultMiddlewaresWithOptions(&options)...)
//	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(
//		authProvider, nil, nil, client)
//
// # Tracking IDs
//
// Kiota does not return a failed response to the caller. An error from
// Send carries the status and the response headers (ApiError's
// ResponseHeaders), which include Graph's request-id. An error type from
// the request's error mappings carries what it parsed from the body, such
// as Graph's innerError request-id or Defender's "target". To get the
// [xdrretry.Error] itself, with its code, tracking ID and challenge, set a
// response handler on the request (abs.NewRequestHandlerOption) and call
// [xdrretry.ErrorFromResponse] on the *http.Response that the handler
// receives. The handler then parses the body and closes it.
package graph

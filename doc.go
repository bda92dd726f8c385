// Package xdrretry provides an [http.RoundTripper] for the Microsoft
// Defender XDR, Defender for Endpoint and Microsoft Graph security APIs
// that retries what those APIs report as transient and fails fast, with a
// typed [Error], on everything else.
//
// Plug it in under any client:
//
//	client := &http.Client{Transport: xdrretry.New(nil,
//		xdrretry.WithTokenRefresh(refresh),
//	)}
//
// The transport reads each error response's Defender envelope
// ({"error":{"code","message","target"}}) or Graph envelope (with
// "innerError"). It retries 429, 500, 502, 503 and 504 and network failures
// with jittered exponential backoff, honouring Retry-After as a minimum
// wait. It calls the refresh function on 401 and sends the request once
// more with the new token. Any other status of 400 or above fails at once.
// Every failure is an [*Error] that carries the code, the message and the
// tracking ID that Microsoft support asks for.
//
// The transport logs nothing unless given a logger with [WithLogger], and
// never logs a header or a token.
//
// Package xdrtest, beside this one, starts a fake Defender API on a
// loopback port for tests.
package xdrretry

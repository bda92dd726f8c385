// Package bench compares xdrretry with the retrying HTTP clients that Go
// programs use instead: a bare *http.Transport, go-retryablehttp, the
// RetryHandler of kiota-http-go (the Microsoft Graph SDK's HTTP layer) and
// failsafe-go's failsafehttp round tripper. Every contender sends its
// requests through its own *http.Transport with the same settings to one
// fake Defender API (package xdrtest) on a loopback port.
//
// The benchmarks time the success path, a 500 followed by a success, a
// fail-fast 404 and a 401 with a token refresh. The Test functions count
// what each contender sends in four situations: a throttle window, a run of
// 404s, a retry storm and a burst of 401s with one expired token.
//
// BENCHMARKS.md beside this file holds the results, the commands that
// produced them and the machine they ran on.
package bench

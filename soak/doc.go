// Package soak holds the soak test of xdrretry: many requests from 64
// goroutines through one Transport against the fake Defender API, with
// mixed faults and token expiries. It is a module of its own so that the
// root module does not depend on go.uber.org/goleak.
//
// CI runs it at 2,000 requests; the full size of 20,000 runs with
//
//	go test -run TestSoak -soak .
//
// or with the soak build tag.
package soak

//go:build soak

package xdrretry_test

func init() { soakRequests = soakFullRequests }

//go:build soak

package soak_test

func init() { soakRequests = soakFullRequests }

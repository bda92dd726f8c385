package xdrretry

import (
	"context"
	"errors"

	"golang.org/x/oauth2"
)

// RefreshFromTokenFunc returns a [RefreshFunc] that calls fetch for each new
// token, such as [golang.org/x/oauth2/clientcredentials.Config.Token], which
// requests a new token from the token endpoint on every call.
//
// To keep a cached token on every request and refresh it only on a 401,
// put an [oauth2.Transport] outside the Transport:
//
//	cfg := &clientcredentials.Config{ /* tenant, app, secret, scope */ }
//	client := &http.Client{Transport: &oauth2.Transport{
//		Source: cfg.TokenSource(ctx),
//		Base:   xdrretry.New(nil, xdrretry.WithTokenRefresh(xdrretry.RefreshFromTokenFunc(cfg.Token))),
//	}}
//
// oauth2.Transport keeps sending its cached token until that token's expiry
// time, even after the service rejected it. The Transport swaps a rejected
// token for its replacement on every later request, so the stale token is
// not sent again.
func RefreshFromTokenFunc(fetch func(ctx context.Context) (*oauth2.Token, error)) RefreshFunc {
	return func(ctx context.Context, _ *Error) (string, error) {
		tok, err := fetch(ctx)
		if err != nil {
			return "", err
		}
		if tok == nil {
			return "", errNilToken
		}
		return tok.AccessToken, nil
	}
}

// RefreshFromTokenSource returns a [RefreshFunc] that takes each new token
// from src. src must fetch a new token on each call. A caching source, such
// as the one that oauth2.ReuseTokenSource or
// clientcredentials.Config.TokenSource returns, gives back the rejected
// token until it expires, and the refresh then fails; use
// [RefreshFromTokenFunc] with a fetching function instead.
func RefreshFromTokenSource(src oauth2.TokenSource) RefreshFunc {
	return RefreshFromTokenFunc(func(context.Context) (*oauth2.Token, error) {
		return src.Token()
	})
}

var errNilToken = errors.New("token source returned no token")

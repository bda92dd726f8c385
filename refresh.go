package xdrretry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// refreshTimeout bounds one call of the refresh function. The call runs
// apart from the request that started it, so that one caller giving up does
// not fail the others that wait for the same token.
const refreshTimeout = time.Minute

// maxReplacements bounds the rejected-token table.
const maxReplacements = 32

// Errors of the refresh step, wrapped in the Unauthorized [Error].
var (
	errNoRefresh     = errors.New("no token refresh function is set")
	errEmptyToken    = errors.New("token refresh returned an empty token")
	errSameToken     = errors.New("token refresh returned the rejected token")
	errSecond401     = errors.New("the refreshed token was rejected too")
	errRefreshPanic  = errors.New("token refresh panicked")
	errRefreshExited = errors.New("token refresh exited its goroutine without returning")
	errInvalidToken  = errors.New("token refresh returned a token with control characters or surrounding spaces")
)

// tokens runs token refreshes and remembers which token replaced which.
type tokens struct {
	group singleflight.Group

	mu       sync.Mutex
	replaced map[string]string // rejected token -> its newest replacement
	count    atomic.Int32      // len(replaced), read without the lock
}

// current returns the replacement for a rejected token, if there is one.
func (t *tokens) current(token string) (string, bool) {
	if t.count.Load() == 0 || token == "" {
		return "", false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fresh, ok := t.replaced[token]
	return fresh, ok
}

// remember records that fresh replaces rejected, and that it also replaces
// every older token that rejected had replaced.
func (t *tokens) remember(rejected, fresh string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.replaced == nil {
		t.replaced = make(map[string]string)
	}
	for old, repl := range t.replaced {
		if repl == rejected {
			t.replaced[old] = fresh
		}
	}
	if _, ok := t.replaced[rejected]; !ok && len(t.replaced) >= maxReplacements {
		for old := range t.replaced {
			delete(t.replaced, old)
			break
		}
	}
	t.replaced[rejected] = fresh
	delete(t.replaced, fresh)
	t.count.Store(int32(len(t.replaced)))
}

// get returns a token to replace rejected. Requests rejected with the same
// token share one call of the refresh function. For a token that was
// already replaced, the replacement comes from the table without a call.
func (t *tokens) get(ctx context.Context, refresh RefreshFunc, rejected string, cause *Error) (string, error) {
	if refresh == nil {
		return "", errNoRefresh
	}
	if fresh, ok := t.current(rejected); ok {
		return fresh, nil
	}

	// The key is the rejected token itself. It stays in memory only and is
	// never logged.
	ch := t.group.DoChan(rejected, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		fresh, err := callRefresh(rctx, refresh, cause)
		if err != nil {
			return "", err
		}
		switch {
		case fresh == "":
			return "", errEmptyToken
		case fresh == rejected:
			return "", errSameToken
		case !validToken(fresh):
			return "", errInvalidToken
		}
		t.remember(rejected, fresh)
		return fresh, nil
	})

	select {
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
}

// refreshResult is the result of one run of the refresh function.
type refreshResult struct {
	token    string
	err      error
	returned bool
}

// callRefresh runs the refresh function on a goroutine of its own and
// waits for it at most until ctx ends. A function that ignores ctx then
// keeps only its own goroutine, not the requests waiting for it. A panic
// or a runtime.Goexit in the function becomes an error, because either
// would otherwise end the program or leave the waiters with no result.
// cause is a copy, so the function cannot change the error that the
// request returns.
func callRefresh(ctx context.Context, refresh RefreshFunc, cause *Error) (string, error) {
	done := make(chan refreshResult, 1)
	go func() {
		var res refreshResult
		defer func() {
			if r := recover(); r != nil {
				res.err = fmt.Errorf("%w: %v", errRefreshPanic, r)
			} else if !res.returned {
				res.err = errRefreshExited
			}
			done <- res
		}()
		res.token, res.err = refresh(ctx, cause)
		res.returned = true
	}()
	select {
	case res := <-done:
		return res.token, res.err
	case <-ctx.Done():
		return "", fmt.Errorf("token refresh did not return: %w", context.Cause(ctx))
	}
}

// validToken reports whether token can be sent in an Authorization header:
// no control characters and no spaces at either end.
func validToken(token string) bool {
	if strings.TrimSpace(token) != token {
		return false
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// bearerToken returns the token of an "Authorization: Bearer" header, or "".
func bearerToken(h http.Header) string {
	auth := h.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

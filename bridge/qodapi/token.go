package qodapi

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// maxRefreshMargin is how long before its expiry a token is replaced (less
// for a short-lived token: half its life).
const maxRefreshMargin = 10 * time.Second

// tokenCache holds the client credentials token: fetched when there is
// none or it is about to expire on the client's clock, dropped when the
// API refuses it (401). One fetch at a time; callers that need a token
// meanwhile wait for it, each within its own ctx.
type tokenCache struct {
	cfg  *clientcredentials.Config
	http *http.Client // sends the token requests
	now  func() time.Time

	mu     sync.Mutex
	tok    *oauth2.Token
	renew  time.Time // on now's clock; zero: the token states no expiry
	flight *tokenFlight
}

// tokenFlight is a token request in progress; done closes when tok or err
// is set.
type tokenFlight struct {
	done chan struct{}
	tok  *oauth2.Token
	err  error
}

// token returns a token that is not about to expire, fetching one if need
// be with ctx (which bounds the token request).
func (t *tokenCache) token(ctx context.Context) (*oauth2.Token, error) {
	for {
		t.mu.Lock()
		if t.tok != nil && (t.renew.IsZero() || t.now().Before(t.renew)) {
			tok := t.tok
			t.mu.Unlock()
			return tok, nil
		}
		if f := t.flight; f != nil {
			t.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
			// The fetch was cut short by its caller's ctx, not refused by
			// the endpoint: fetch again with ours.
			if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
				continue
			}
			return f.tok, f.err
		}
		f := &tokenFlight{done: make(chan struct{})}
		t.flight = f
		t.mu.Unlock()

		f.tok, f.err = t.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, t.http))
		obtained := t.now()

		t.mu.Lock()
		if f.err == nil {
			t.tok, t.renew = f.tok, renewAt(f.tok, obtained)
		}
		t.flight = nil
		t.mu.Unlock()
		close(f.done)
		return f.tok, f.err
	}
}

// renewAt is when a token obtained at obtained (on the client's clock) is
// to be replaced: its lifetime (expires_in) less a margin; zero when the
// endpoint stated none.
func renewAt(tok *oauth2.Token, obtained time.Time) time.Time {
	var life time.Duration
	switch {
	case tok.ExpiresIn > 0:
		life = time.Duration(tok.ExpiresIn) * time.Second
	case !tok.Expiry.IsZero(): // a form-encoded answer: Expiry is on the real clock
		life = max(time.Until(tok.Expiry), 0)
	default:
		return time.Time{}
	}
	return obtained.Add(life - min(maxRefreshMargin, life/2))
}

// drop forgets tok if it is still the cached token: the API refused it.
func (t *tokenCache) drop(tok *oauth2.Token) {
	t.mu.Lock()
	if t.tok == tok {
		t.tok, t.renew = nil, time.Time{}
	}
	t.mu.Unlock()
}

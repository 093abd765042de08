package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/qodbridge/qodbridge/bridge/ingress"
)

// cookieName holds a login: "<expiry unix seconds>.<base64url HMAC>".
const cookieName = "qodbridge_console"

// authorized reports whether r may use the console: always when Open,
// else with a bearer token or a valid login cookie.
func (c *Console) authorized(r *http.Request) bool {
	if c.o.Open {
		return true
	}
	if bearer(r) {
		return c.tokenOK(strings.TrimSpace(r.Header.Get("Authorization")[len("Bearer "):]))
	}
	ck, err := r.Cookie(cookieName)
	return err == nil && c.cookieOK(ck.Value, time.Now())
}

func bearer(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	return len(a) > len("Bearer ") && strings.EqualFold(a[:len("Bearer ")], "Bearer ")
}

// tokenOK compares tok with every configured token in constant time: over
// SHA-256 digests, so that neither which token matched nor any token's
// length shows in the timing.
func (c *Console) tokenOK(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	ok := 0
	for _, t := range *c.tokens.Load() {
		ok |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return ok == 1 && tok != ""
}

// cookieValue signs an expiry: the cookie proves a login without holding
// the token, and a process restart (a new key) signs everyone out.
func (c *Console) cookieValue(expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + base64.RawURLEncoding.EncodeToString(c.mac(exp))
}

func (c *Console) mac(exp string) []byte {
	m := hmac.New(sha256.New, *c.key.Load())
	m.Write([]byte("qodbridge console login\x00" + exp))
	return m.Sum(nil)
}

func (c *Console) cookieOK(v string, now time.Time) bool {
	exp, sig, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, c.mac(exp)) {
		return false
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	return err == nil && now.Before(time.Unix(sec, 0))
}

// serveLogin checks the token of the login form and sets the cookie.
func (c *Console) serveLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if c.o.Open {
		http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil || !c.tokenOK(strings.TrimSpace(r.PostForm.Get("token"))) {
		c.renderLogin(w, http.StatusUnauthorized, "That token is not accepted. Use one of the console's tokens (admin.console_tokens, QODBRIDGE_CONSOLE_TOKENS).")
		return
	}
	expires := time.Now().Add(c.o.LoginTTL)
	http.SetCookie(w, &http.Cookie{
		Name:     cookieName,
		Value:    c.cookieValue(expires),
		Path:     Prefix,
		Expires:  expires,
		MaxAge:   int(c.o.LoginTTL / time.Second),
		HttpOnly: true,
		// Over TLS, also through a proxy the operator trusts: the admin
		// listener itself has none.
		Secure:   ingress.ViaTLS(r, c.o.TrustedProxies),
		SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
}

// serveLogout clears the cookie. The signed expiry itself stays valid
// until it passes: a copied cookie is not revoked (restart to revoke all).
func (c *Console) serveLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: ingress.ViaTLS(r, c.o.TrustedProxies), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
}

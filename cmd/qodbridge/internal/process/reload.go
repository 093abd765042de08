package process

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/qodbridge/qodbridge/config"
)

// DefaultReloadInterval is how often the config file and the secret files
// are read to see whether they changed (Options.ReloadInterval).
const DefaultReloadInterval = 5 * time.Second

// credentials are the settings a running process takes anew on Reload:
// the ingress's tokens and session secrets, the admin tokens.
type credentials struct {
	tokens, secrets, admin []string
}

// ErrNoReload is Reload's error when the process has no Options.Reload.
var ErrNoReload = errors.New("process: no Options.Reload to read the configuration again")

// Reload reads the configuration again (Options.Reload) and puts its
// ingress tokens (auth.tokens), session secrets (auth.session_secrets) and
// admin tokens (admin.tokens) in service, each swapped whole: a request in
// flight is checked against the old set or the new one, never a mix, and
// none is dropped. Other settings take a restart. When the configuration
// does not load, or no longer names tokens or secrets it named before, the
// credentials in service stay and the error is logged and returned. It
// logs what changed, never the values. `qodbridge serve` calls it on
// SIGHUP; the process calls it itself when a file the settings came from
// changes (Options.ReloadInterval).
func (b *Process) Reload() error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	if b.o.Reload == nil {
		return ErrNoReload
	}
	if b.ingress == nil {
		return errors.New("process: Reload before Start")
	}
	err := b.reload()
	if err != nil {
		b.log.Error("reload failed: the credentials in service stay", "err", err)
	}
	return err
}

func (b *Process) reload() error {
	nc, err := b.o.Reload()
	if err == nil {
		err = Check(nc)
	}
	if err != nil {
		return err
	}
	cur := b.creds
	next := credentials{tokens: nc.Auth.Tokens, secrets: nc.Auth.SessionSecrets, admin: nc.Admin.Tokens}
	if nc.GeneratedToken != "" { // none configured
		if b.cfg.GeneratedToken == "" {
			return &config.FieldError{Field: "auth.tokens", Err: fmt.Errorf("%w: no tokens are configured any more", config.ErrInvalid)}
		}
		next.tokens = cur.tokens // the one printed at start
	}
	if nc.Auth.SessionSecretsGenerated {
		if !b.cfg.Auth.SessionSecretsGenerated {
			return &config.FieldError{Field: "auth.session_secrets", Err: fmt.Errorf("%w: no session secrets are configured any more", config.ErrInvalid)}
		}
		next.secrets = cur.secrets // the one made at start
	}
	var changed []string
	if !slices.Equal(next.tokens, cur.tokens) || !slices.Equal(next.secrets, cur.secrets) {
		secrets := make([][]byte, len(next.secrets))
		for i, s := range next.secrets {
			secrets[i] = []byte(s)
		}
		b.ingress.SetCredentials(next.tokens, secrets)
		if !slices.Equal(next.tokens, cur.tokens) {
			changed = append(changed, "auth.tokens")
		}
		if !slices.Equal(next.secrets, cur.secrets) {
			changed = append(changed, "auth.session_secrets")
			if b.commands != nil {
				b.commands.engine.SetSessionSecret(secrets[0])
			}
		}
	}
	if !slices.Equal(next.admin, cur.admin) {
		b.setAdminTokens(next.admin)
		if b.console != nil {
			b.console.c.SetTokens(next.admin)
		}
		changed = append(changed, "admin.tokens")
	}
	b.creds = next
	if len(changed) == 0 {
		b.log.Info("reloaded: the credentials are unchanged")
		return nil
	}
	b.log.Info("reloaded credentials", "changed", changed,
		"auth_tokens", len(next.tokens), "session_secrets", len(next.secrets), "admin_tokens", len(next.admin))
	return nil
}

// setAdminTokens puts the admin listener's tokens in service.
func (b *Process) setAdminTokens(tokens []string) {
	sums := make([][sha256.Size]byte, len(tokens))
	for i, t := range tokens {
		sums[i] = sha256.Sum256([]byte(t))
	}
	b.adminTokens.Store(&sums)
}

// watchFiles reads files every interval and calls Reload when any of them
// changed (its contents, or whether it can be read), until stop closes.
// Contents rather than modification times: a Kubernetes Secret volume
// swaps a symbolic link, and a copy may keep the time.
func (b *Process) watchFiles(files []string, every time.Duration, stop <-chan struct{}) {
	read := func() [][sha256.Size]byte {
		sums := make([][sha256.Size]byte, len(files))
		for i, f := range files {
			if data, err := os.ReadFile(f); err == nil {
				sums[i] = sha256.Sum256(data)
			}
		}
		return sums
	}
	last := read()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := read()
		var changed []string
		for i := range files {
			if now[i] != last[i] {
				changed = append(changed, files[i])
			}
		}
		if len(changed) == 0 {
			continue
		}
		last = now
		b.log.Info("reloading: files changed", "files", changed)
		_ = b.Reload() // logged
	}
}

// Package commandtest gives the tests of command intakes a real command
// engine: the QoD simulator served over HTTP, the real API client talking
// to it, and a receiver that acknowledges the simulator's notifications.
package commandtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/qodapi"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
)

// API is a simulated QoD platform and a client of it.
type API struct {
	Client *qodapi.Client
	Sim    *qodsim.Sim
	// NotifyURL is where the sessions the engine creates send their
	// notifications (answered 204, not published anywhere).
	NotifyURL string
}

// NewAPI starts the simulator (sessions stay REQUESTED for an hour unless
// o says otherwise) and stops it at the end of the test.
func NewAPI(t testing.TB, o qodsim.Options) *API {
	t.Helper()
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)
	if o.AvailableDelay == 0 {
		o.AvailableDelay = time.Hour
	}
	sim, err := qodsim.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(func() { srv.Close(); _ = sim.Close() })
	client, err := qodapi.New(qodapi.Options{BaseURL: srv.URL + qodsim.BasePathV1})
	if err != nil {
		t.Fatal(err)
	}
	return &API{Client: client, Sim: sim, NotifyURL: receiver.URL + "/notifications"}
}

// Engine returns an engine on a's client that gives created sessions
// NotifyURL as their sink; store nil means the engine's default.
func (a *API) Engine(t testing.TB, store command.Store) *command.Engine {
	t.Helper()
	e, err := command.New(a.Client, command.Options{NotifyURL: a.NotifyURL, SessionSecret: []byte("secret-0123456789abcdef"), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Running is an intake's Run(intake, work) going on in the background.
type Running struct {
	// CancelIntake is SIGTERM: stop fetching, finish what is in flight.
	CancelIntake context.CancelFunc
	// CancelWork is the shutdown deadline: cut in-flight commands short.
	CancelWork context.CancelFunc
	done       chan struct{} // closed when Run returned
	err        error         // Run's error, set before done closes
}

// Start runs run in the background; at the end of the test both contexts
// are cancelled and Start's cleanup waits for run to return.
func Start(t testing.TB, run func(intake, work context.Context) error) *Running {
	t.Helper()
	intake, ci := context.WithCancel(context.Background())
	work, cw := context.WithCancel(context.Background())
	r := &Running{CancelIntake: ci, CancelWork: cw, done: make(chan struct{})}
	go func() {
		r.err = run(intake, work)
		close(r.done)
	}()
	t.Cleanup(func() {
		ci()
		cw()
		_ = r.Wait()
	})
	return r
}

// Wait waits for Run to return and gives its error.
func (r *Running) Wait() error {
	<-r.done
	return r.err
}

// Stop is a graceful shutdown: stop intake, let in-flight commands finish.
func (r *Running) Stop(t testing.TB) {
	t.Helper()
	r.CancelIntake()
	if err := r.Wait(); err != nil {
		t.Errorf("Run: %v", err)
	}
	r.CancelWork()
}

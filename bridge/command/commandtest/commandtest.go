// Package commandtest gives the tests of command intakes a real command
// engine: the QoD simulator served over HTTP, the real API client talking
// to it, and a receiver that acknowledges the simulator's notifications.
package commandtest

import (
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

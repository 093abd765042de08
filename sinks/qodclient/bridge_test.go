package qodclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/ingress"
	"github.com/qodbridge/qodbridge/bridge/qodapi"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/sinks/kafkacmd"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/natscmd"
	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/natsview"
)

// testBridge is the command flow assembled the way the bridge's process
// assembles it, in-process: the QoD simulator behind the real API client and
// command engine, the ingress receiving the simulator's notifications with
// per-session credentials and publishing them to the status stream or
// topic, and the NATS (stream and micro service) or Kafka intake.
type testBridge struct {
	// NATSURL is the embedded server's URL, for the application user
	// (natssink.ClientPermissions); empty on Kafka.
	NATSURL string
	// Kafka are the seed brokers of the kfake cluster; nil on NATS.
	Kafka []string
	Sim   *qodsim.Sim

	cleanup []func()
}

// Close stops everything, last started first.
func (b *testBridge) Close() {
	for i := len(b.cleanup) - 1; i >= 0; i-- {
		b.cleanup[i]()
	}
	b.cleanup = nil
}

const (
	appUser, appPassword = "app", "app-password"
	testSecret           = "session-secret-0123456789abcdef"
)

// startBridge starts a bridge on NATS (kafka false) or Kafka. sim
// configures the simulator (AvailableDelay 50ms unless set).
func startBridge(kafka bool, sim qodsim.Options) (_ *testBridge, err error) {
	b := &testBridge{}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var status interface {
		bridge.Publisher
		Close() error
	}
	var nc *nats.Conn
	if kafka {
		c, err := kfake.NewCluster(kfake.NumBrokers(1),
			kfake.SeedTopics(3, "qod.status", kafkacmd.DefaultTopic, kafkacmd.DefaultResultTopic, kafkacmd.DefaultDLQTopic))
		if err != nil {
			return nil, fmt.Errorf("kfake: %w", err)
		}
		b.cleanup = append(b.cleanup, c.Close)
		b.Kafka = c.ListenAddrs()
		s, err := kafkasink.Open(ctx, kafkasink.ConnOptions{Brokers: b.Kafka}, kafkasink.Options{})
		if err != nil {
			return nil, fmt.Errorf("kafka status sink: %w", err)
		}
		status = s
	} else {
		dir, err := os.MkdirTemp("", "qodclient-test-")
		if err != nil {
			return nil, err
		}
		b.cleanup = append(b.cleanup, func() { os.RemoveAll(dir) })
		srv, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: dir,
			Users: []natssink.EmbeddedUser{
				{Name: "bridge", Password: "bridge-password"},
				{Name: appUser, Password: appPassword, Permissions: natssink.ClientPermissions("qod", "QOD_STATUS", "QOD_RESULTS", "KV_"+natsview.DefaultBucket)},
			}})
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		b.cleanup = append(b.cleanup, func() { srv.Shutdown(); srv.WaitForShutdown() })
		b.NATSURL = srv.ClientURL()
		if nc, err = nats.Connect(b.NATSURL, nats.UserInfo("bridge", "bridge-password")); err != nil {
			return nil, fmt.Errorf("bridge connection: %w", err)
		}
		b.cleanup = append(b.cleanup, nc.Close)
		s, err := natssink.New(ctx, nc, natssink.Options{Stream: natssink.StreamOptions{Memory: true}})
		if err != nil {
			return nil, fmt.Errorf("NATS status sink: %w", err)
		}
		status = s
	}
	b.cleanup = append(b.cleanup, func() { _ = status.Close() })

	// The ingress, as the sink of every session the engine creates.
	ing, err := ingress.New(status, ingress.Options{Tokens: []string{"static-token-0123456789"}, SessionSecrets: [][]byte{[]byte(testSecret)}})
	if err != nil {
		return nil, fmt.Errorf("ingress: %w", err)
	}
	notify := httptest.NewServer(ing)
	b.cleanup = append(b.cleanup, notify.Close)

	if sim.AvailableDelay == 0 {
		sim.AvailableDelay = 50 * time.Millisecond
	}
	if b.Sim, err = qodsim.New(sim); err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	api := httptest.NewServer(b.Sim.Handler())
	b.cleanup = append(b.cleanup, func() { api.Close(); _ = b.Sim.Close() })
	client, err := qodapi.New(qodapi.Options{BaseURL: api.URL + qodsim.BasePathV1})
	if err != nil {
		return nil, fmt.Errorf("QoD API client: %w", err)
	}
	engine, err := command.New(client, command.Options{NotifyURL: notify.URL + "/notifications",
		SessionSecret: []byte(testSecret), Status: status, MaxAttempts: 2, BaseBackoff: 10 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}

	var run func(intake, work context.Context) error
	var ready func(context.Context) error
	if kafka {
		in, err := kafkacmd.New(ctx, kafkasink.ConnOptions{Brokers: b.Kafka}, engine, kafkacmd.Options{
			HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
			JoinBackoff: 100 * time.Millisecond, FetchMaxWait: 100 * time.Millisecond})
		if err != nil {
			return nil, fmt.Errorf("kafka intake: %w", err)
		}
		b.cleanup = append(b.cleanup, func() { _ = in.Close() })
		run, ready = in.Run, in.Ready
	} else {
		in, err := natscmd.New(ctx, nc, engine, natscmd.Options{Micro: true, Memory: true})
		if err != nil {
			return nil, fmt.Errorf("NATS intake: %w", err)
		}
		run = in.Run
		ready = func(ctx context.Context) error {
			select {
			case <-in.Ready():
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	intake, stopIntake := context.WithCancel(context.Background())
	work, stopWork := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(intake, work) }()
	b.cleanup = append(b.cleanup, func() {
		stopIntake()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			stopWork()
			<-done
		}
		stopWork()
	})
	if err := ready(ctx); err != nil {
		return nil, fmt.Errorf("intake not ready: %w", err)
	}
	return b, nil
}

// connect is the application's connection: the user with the permissions
// an application of the bridge gets.
func (b *testBridge) connect() (*nats.Conn, error) {
	nc, err := nats.Connect(b.NATSURL, nats.UserInfo(appUser, appPassword))
	if err != nil {
		return nil, errors.Join(errors.New("application connection"), err)
	}
	return nc, nil
}

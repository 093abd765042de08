package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a JetStream cluster of nats-servers in this process, on
// loopback, for tests of what the bridge promises on a real cluster:
// stopping and restarting one server, losing a stream leader.
type Cluster struct {
	t       testing.TB
	Servers []*server.Server // nil where stopped
	opts    []*server.Options
}

// NewCluster starts n servers routed to each other, each with JetStream
// and its store in t.TempDir(), and waits until they elected a meta
// leader. They are shut down when the test ends.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Servers: make([]*server.Server, n), opts: make([]*server.Options, n)}
	clientPorts, routePorts := freePorts(t, n), freePorts(t, n)
	var routes []*url.URL
	for i := range n {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", routePorts[i])})
	}
	dir := t.TempDir()
	for i := range n {
		c.opts[i] = &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			Cluster:    server.ClusterOpts{Name: "qodbridge-test", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:     routes,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			NoLog:      true,
			NoSigs:     true,
		}
	}
	t.Cleanup(func() {
		for i := range c.Servers {
			c.Stop(i)
		}
	})
	for i := range n {
		c.Restart(i)
	}
	c.WaitReady(30 * time.Second)
	return c
}

// freePorts returns n ports free on loopback right now (a server started
// a moment later may lose one to another process; tests then fail loudly).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		defer l.Close()
	}
	return ports
}

// URLs is every server's client URL, comma-separated, as a NATS client
// takes them.
func (c *Cluster) URLs() string {
	var us []string
	for _, o := range c.opts {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(us, ",")
}

// Stop shuts server i down (its clients see the connection drop) and waits
// until its files are closed. Stopping a stopped server does nothing.
func (c *Cluster) Stop(i int) {
	if s := c.Servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.Servers[i] = nil
	}
}

// Restart starts server i again on the same ports and store.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Servers[i] != nil {
		return
	}
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatalf("server %d: %v", i, err)
	}
	s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		c.t.Fatalf("server %d not ready", i)
	}
	c.Servers[i] = s
}

// WaitReady waits until a meta leader is elected and every running server
// is current with it.
func (c *Cluster) WaitReady(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ready := c.metaLeader()
		for _, s := range c.Servers {
			if s != nil && (!s.JetStreamIsClustered() || !s.JetStreamIsCurrent()) {
				ready = false
			}
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no JetStream meta leader within %s", within)
		}
		time.Sleep(20 * time.Millisecond) // polling the servers' state, with a deadline
	}
	c.waitPlacement(deadline)
}

// waitPlacement waits until the meta leader places a stream on every
// running server: a leader elected is not yet a leader that knows every
// peer online, and a stream created before that fails with "no suitable
// peers for placement". It creates and deletes a probe stream.
func (c *Cluster) waitPlacement(deadline time.Time) {
	c.t.Helper()
	running := 0
	for _, s := range c.Servers {
		if s != nil {
			running++
		}
	}
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1))
	if err != nil {
		c.t.Fatalf("natstest: connect to the cluster: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "NATSTEST_PLACEMENT", Subjects: []string{"natstest.placement"},
			Storage: jetstream.MemoryStorage, Replicas: running})
		if err == nil {
			err = js.DeleteStream(ctx, "NATSTEST_PLACEMENT")
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("natstest: the cluster does not place a stream on its %d servers: %v", running, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the cluster, with a deadline
	}
}

func (c *Cluster) metaLeader() bool {
	for _, o := range c.Servers {
		if o != nil && o.JetStreamIsLeader() {
			return true
		}
	}
	return false
}

// StreamLeader is the index of the server leading stream (in the global
// account), or -1 while there is none.
func (c *Cluster) StreamLeader(stream string) int {
	for i, s := range c.Servers {
		if s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

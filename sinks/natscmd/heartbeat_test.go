package natscmd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/command/commandtest"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// TestIntakeResumesAfterMissedHeartbeats: when the server's answers to
// the intake's pull stop for longer than two heartbeats (here: a proxy
// holds back everything the server sends), the intake logs it and keeps
// consuming, instead of ending its consumer for good. The proxy then cuts
// the held-back connection, so that the client reconnects rather than
// getting the backlog at once: its pull subscription buffers only Lanes
// messages and drops the rest as a slow consumer, which is another
// matter.
func TestIntakeResumesAfterMissedHeartbeats(t *testing.T) {
	nc, js := natstest.Server(t)
	f := &fixture{nc: nc, js: js, api: commandtest.NewAPI(t, qodsim.Options{})}
	px := startPausableProxy(t, nc.ConnectedAddr())
	inc, _ := natstest.Connect(t, "nats://"+px.addr())

	var logs sinktest.Buffer
	ran := make(chan string, 10)
	in, err := New(context.Background(), inc, execFunc(func(cmd command.Command) { ran <- cmd.RequestID }),
		Options{Memory: true, Lanes: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	in.pullExpiry = time.Second // heartbeats every 500 ms
	commandtest.Start(t, in.Run)
	waitRan := func(id string) {
		t.Helper()
		select {
		case got := <-ran:
			if got != id {
				t.Fatalf("ran %s, want %s", got, id)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not run; log:\n%s", id, logs.String())
		}
	}
	f.publish(t, "qod.commands.get", `{"requestId":"hb-1","sessionId":"s1"}`)
	waitRan("hb-1")
	// Acked (the work queue drops it) before the answers are held back, so
	// that hb-1 is not redelivered.
	if !sinktest.Poll(20*time.Second, 10*time.Millisecond, func() bool { return f.count(t, "QOD_COMMANDS") == 0 }) {
		t.Fatal("hb-1 was not acked")
	}

	px.hold()
	missed := sinktest.Poll(20*time.Second, 10*time.Millisecond, func() bool { return strings.Contains(logs.String(), "no heartbeat") })
	px.cut()
	if !missed {
		t.Fatalf("no missed heartbeat logged; log:\n%s", logs.String())
	}
	// Published after the reconnect: one published while the server still
	// held the dead connection's pull would go to that pull and come back
	// only after AckWait, as JetStream promises.
	if !sinktest.Poll(20*time.Second, 10*time.Millisecond, func() bool { return inc.Stats().Reconnects > 0 && inc.IsConnected() }) {
		t.Fatal("the intake's connection did not reconnect")
	}
	f.publish(t, "qod.commands.get", `{"requestId":"hb-2","sessionId":"s1"}`)
	waitRan("hb-2")
}

type execFunc func(command.Command)

func (e execFunc) Execute(_ context.Context, cmd command.Command) (command.Outcome, error) {
	e(cmd)
	return command.Outcome{Result: command.Result{RequestID: cmd.RequestID, Action: cmd.Action, OK: true, Status: 200}}, nil
}

// pausableProxy forwards TCP connections to a server; hold holds back
// what the server sends (the connections stay open) until cut closes
// them.
type pausableProxy struct {
	ln    net.Listener
	gate  sync.RWMutex // write-locked while held
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startPausableProxy(t *testing.T, target string) *pausableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pausableProxy{ln: ln}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(s, c) })
			p.wg.Go(func() { p.copyGated(c, s) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		p.closeConns()
		p.wg.Wait()
	})
	return p
}

func (p *pausableProxy) copyGated(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate.RLock()
			_, werr := dst.Write(buf[:n])
			p.gate.RUnlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *pausableProxy) addr() string { return p.ln.Addr().String() }
func (p *pausableProxy) hold()        { p.gate.Lock() }

// cut closes the connections, dropping what was held back, and lets new
// ones through.
func (p *pausableProxy) cut() {
	p.closeConns()
	p.gate.Unlock()
}

func (p *pausableProxy) closeConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

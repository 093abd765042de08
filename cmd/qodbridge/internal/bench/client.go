package bench

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// loadClient is the load generator's HTTP/1.1 client: keep-alive
// connections, one request at a time on each, the request written from a
// buffer the connection reuses and the answer read with http.ReadResponse.
//
// It exists because the load generator shares the process, the two cores
// and the garbage collector with the bridge it measures. With net/http's
// Client the generator made 4.6 kB of garbage per request, a third of the
// whole process's (bridge, NATS server and consumer included), and every
// request passed through two more goroutines, the connection's read and
// write loops. GC marks are what set the bridge's tail latency at half
// peak (in a runtime trace of a half-peak slice, 95 % of the goroutine
// waits longer than 2 ms overlapped a mark), so the generator's garbage
// was measured as the bridge's latency.
//
// What it leaves out, because bench does not need it: HTTP/2, proxies,
// redirects, compression, cookies. A request that fails on a connection
// that already served one, before any byte of the answer arrived (the
// server closed it while idle), is sent once more on a new connection, as
// net/http does.
//
// Safe for concurrent use. It keeps at most as many idle connections as
// the concurrency it was made for; callers bound how many requests run at
// once (drive runs conc at most).
type loadClient struct {
	addr    string      // host:port to dial
	tlsConf *tls.Config // nil for http
	head    []byte      // request line, Host, Authorization, User-Agent
	timeout time.Duration
	idle    chan *loadConn
	dialer  net.Dialer
}

type loadConn struct {
	c      net.Conn
	br     *bufio.Reader
	buf    []byte // the request, reused
	served int    // answers read on this connection
}

// reqHeader is one request header line.
type reqHeader struct{ name, value string }

// errLoadURL reports a -url the load client cannot send to.
var errLoadURL = errors.New("not an http(s) URL with a host")

func newLoadClient(target, token string, conc int, timeout time.Duration) (*loadClient, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("bench: -url %q: %w", target, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("bench: -url %q: %w", target, errLoadURL)
	}
	c := &loadClient{timeout: timeout, idle: make(chan *loadConn, conc)}
	port := u.Port()
	switch {
	case u.Scheme == "https":
		c.tlsConf = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
		port = cmp.Or(port, "443")
	case port == "":
		port = "80"
	}
	c.addr = net.JoinHostPort(u.Hostname(), port)
	head := "POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: qodbridge-bench\r\n"
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	c.head = []byte(head)
	return c, nil
}

// post sends one request with the headers hdr and body, and returns the
// answer's status. It gives up when ctx is done or after the client's
// timeout.
func (c *loadClient) post(ctx context.Context, hdr []reqHeader, body []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	lc, err := c.get(ctx)
	if err != nil {
		return 0, err
	}
	status, err := c.roundTrip(ctx, lc, hdr, body)
	if err != nil && lc.served > 0 && retryable(err) && ctx.Err() == nil {
		_ = lc.c.Close()
		if lc, err = c.dial(ctx); err != nil {
			return 0, err
		}
		status, err = c.roundTrip(ctx, lc, hdr, body)
	}
	if err != nil {
		_ = lc.c.Close()
		return 0, err
	}
	c.put(lc)
	return status, nil
}

func (c *loadClient) roundTrip(ctx context.Context, lc *loadConn, hdr []reqHeader, body []byte) (int, error) {
	b := append(lc.buf[:0], c.head...)
	for _, h := range hdr {
		b = append(b, h.name...)
		b = append(b, ": "...)
		b = append(b, h.value...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	lc.buf = b

	_ = lc.c.SetDeadline(time.Now().Add(c.timeout))
	// Unblocks the read below when the run is interrupted.
	stop := context.AfterFunc(ctx, func() { _ = lc.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := lc.c.Write(b); err != nil {
		return 0, nothingBackError{err}
	}
	// Whether any of an answer came, as net/http's client tells
	// (persistConn.readLoop): ReadResponse reports a connection closed
	// before the first byte as io.ErrUnexpectedEOF, like one closed midway.
	if _, err := lc.br.Peek(1); err != nil {
		return 0, nothingBackError{err}
	}
	resp, err := http.ReadResponse(lc.br, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return 0, err
	}
	lc.served++
	if resp.Close {
		_ = lc.c.Close()
		lc.c = nil // put drops it
	}
	return resp.StatusCode, nil
}

// nothingBackError is a request's failure before any byte of an answer
// arrived.
type nothingBackError struct{ err error }

func (e nothingBackError) Error() string { return e.err.Error() }
func (e nothingBackError) Unwrap() error { return e.err }

// retryable reports whether err means the server closed the connection
// before it read the request: it was closed or reset, and nothing of an
// answer arrived.
func retryable(err error) bool {
	var nb nothingBackError
	return errors.As(err, &nb) &&
		(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}

func (c *loadClient) get(ctx context.Context) (*loadConn, error) {
	select {
	case lc := <-c.idle:
		return lc, nil
	default:
		return c.dial(ctx)
	}
}

func (c *loadClient) dial(ctx context.Context) (*loadConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	if c.tlsConf != nil {
		tc := tls.Client(conn, c.tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		conn = tc
	}
	return &loadConn{c: conn, br: bufio.NewReaderSize(conn, 4096)}, nil
}

func (c *loadClient) put(lc *loadConn) {
	if lc.c == nil {
		return
	}
	select {
	case c.idle <- lc:
	default:
		_ = lc.c.Close()
	}
}

// closeIdle closes the idle connections.
func (c *loadClient) closeIdle() {
	for {
		select {
		case lc := <-c.idle:
			_ = lc.c.Close()
		default:
			return
		}
	}
}

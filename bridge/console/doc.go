// Package console serves the live session console: a web page at /ui on the
// admin listener showing every QoD session's current status, each
// session's history, the recent command results, and a form that creates,
// extends and deletes sessions through the same command flow as broker
// messages.
//
// # What it shows, and how current it is
//
// The console keeps, in memory, a table of sessions (the last status of
// each, at most Options.MaxSessions, the least recently updated dropped
// first, and the page says so) and a ring of the last Options.MaxResults
// command results. Both are fed by a Feed (sinks/natsconsole reads them
// from JetStream: the last status per session, then live). What the page
// shows is eventually consistent with the streams: a status reaches the
// page some time after JetStream stored it, and after a broker outage or a
// reconnect of the page it is brought up to date again (a fresh snapshot),
// not replayed event by event. Delivery to browsers is best-effort: a page
// that cannot keep up is disconnected, and its EventSource reconnects and
// starts again from a snapshot.
//
// # Never in the way of the bridge
//
// Publishing notifications never touches the console: the console reads the
// streams like any other consumer, and only while a page is open (and
// Options.Linger after the last one closed), because a consumer that
// receives every status costs the bridge CPU and memory at high rates. The Feed's callbacks only update the
// table under a mutex and append one encoded event to a shared ring
// (Options.Backlog events); they never wait for a browser. Each page is
// served by its own request goroutine that copies from the ring at its own
// pace, at most once per Options.FlushInterval, so a burst reaches a page
// as one write. A page that falls more than Backlog events behind, or whose
// socket does not accept a write within Options.WriteTimeout, is
// disconnected. A closed page ends its request, which unregisters it: a
// page costs a goroutine and a cursor into the ring while it is open, and
// nothing after.
//
// # Security
//
// On a loopback listener (Options.Open) the console needs no credentials,
// but it answers only requests whose Host is a loopback name or address,
// so a web page that rebinds its own DNS name to 127.0.0.1 cannot read it.
// On any other listener it asks for one of the ingress's bearer tokens:
// either as Authorization: Bearer <token> or through a login form that
// sets a cookie holding an HMAC-signed expiry (never the token); with no
// tokens configured it is off (404). Every request that changes
// something (commands, login, logout) passes net/http's
// CrossOriginProtection, on loopback too, because any web page may POST to
// localhost. The page is plain HTML, CSS and JavaScript embedded in the
// binary, served with a strict Content-Security-Policy; it writes data
// from outside (session ids, error messages) only as text.
//
// Imports: bridge, bridge/command and bridge/ingress of ours; never config,
// sinks or cmd. What it shows comes through its Feed; sinks/natsconsole is
// the NATS one.
package console

// Package qodapi is a client for the CAMARA Quality-on-Demand (QoD) REST API:
// create, get, extend and delete sessions, and retrieve the sessions of a
// device.
//
// # Dialects
//
// DialectV1 ("camara-v1") speaks QoD 1.1.0 (CAMARA release r3.2, base URL like
// https://host/quality-on-demand/v1): POST /sessions (201), GET
// /sessions/{id} (200), POST /sessions/{id}/extend (200), DELETE
// /sessions/{id} (204) and POST /retrieve-sessions (200, an array). The
// notification target is sink + sinkCredential.
//
// DialectV0 ("camara-v0") speaks QoD 0.10.1 (base URL like
// https://host/qod/v0), the dialect of Nokia's Network as Code. The caller
// still hands in and gets back 1.x shapes; the client translates:
//
//   - Create request: sink becomes webhook.notificationUrl and
//     sinkCredential.accessToken (credentialType ACCESSTOKEN only) becomes
//     webhook.notificationAuthToken, prefixed "Bearer " as the Network-as-Code
//     Python SDK sends it (Options.V0BareAuthToken sends it alone);
//     sinkCredential.accessTokenExpiresUtc and accessTokenType are dropped,
//     v0 has no place for them. A body that already carries a webhook and no
//     sink is sent unchanged. Every other field passes through.
//   - Responses: webhook.notificationUrl becomes sink (unless a sink is
//     present) and webhook is dropped; startedAt and expiresAt, epoch seconds
//     in v0, become RFC 3339 strings (UTC). qosStatus, statusInfo (which NaC
//     sends though 0.10.1 lacks it), messages (v0 only) and every other field
//     pass through.
//   - Retrieve sessions: 0.10.1 has no such operation. The client sends what
//     Network as Code serves under /qod/v0 and its Python SDK calls since
//     release 24.10: POST /retrieve-sessions with {"device": …}, the 1.x
//     request; the answer is translated like any v0 session. (Older NaC
//     releases used GET /sessions?phoneNumber=…, which is not implemented.) A
//     strict 0.10.1 server answers 404, which reads as "no sessions" (below).
//   - x-correlator is sent in both dialects; 0.10.1 does not define it and
//     servers ignore unknown headers.
//
// # Bodies
//
// CreateSession takes the CAMARA CreateSession body as raw JSON and sends it
// as-is in DialectV1. WithSink sets the notification target on such a body,
// HasSink tells whether it has one. Every answer is returned as a Session:
// Session.Info is the 1.x SessionInfo object, Session's other fields are its
// key fields parsed.
//
// Session.Info is the platform's answer with these changes only: the v0
// translation above; startedAt/expiresAt that were not RFC 3339 (epoch
// seconds or milliseconds as numbers or digit strings, or a date-time with no
// zone, read as UTC) rewritten as RFC 3339 in UTC, null ones removed; and
// sinkCredential (and v0 webhook.notificationAuthToken) removed, because they
// hold the notification secret. An answer that needed no change is kept byte
// for byte.
//
// # Quirks tolerated
//
// Timestamps as RFC 3339 strings or epoch numbers (a magnitude of 1e11 or more
// is read as milliseconds); any 2xx accepted where the spec names one; 404
// from retrieve-sessions meaning "no sessions" (an empty list, as Network as
// Code answers); error bodies that are not ErrorInfo (HTML, empty, or JSON
// such as {"detail": …} or {"message": …}) still give an *APIError with the
// HTTP status and a code derived from it. An unparsable timestamp is left as
// it was, logged, and reads as the zero time: the session exists, and losing
// it over a timestamp would be worse.
//
// # Errors and retries
//
// Every call makes exactly one attempt: retries, with backoff and
// Retry-After, belong to the caller (the command engine). The one exception
// is OAuth2: with ClientCredentials, a 401 answer drops the token the call
// was sent with, a new token is obtained and the call is sent once more (a
// 401 means the request was not acted on, and the token may have expired
// early or been revoked); a second 401 is the error. A 403 is never retried:
// it is an *APIError with the CAMARA code (PERMISSION_DENIED: a scope the
// token lacks, another client's session). The token is otherwise reused
// until shortly before its expires_in runs out, on the client's clock. An
// answer other than 2xx is an *APIError carrying the CAMARA ErrorInfo and
// Retry-After; errors.Is matches it against ErrBadRequest, ErrNotFound and
// the other status sentinels. Retryable reports whether an error is worth another attempt (429,
// 408, 5xx but 501, the per-call timeout, network failures). Errors wrapping
// ErrInvalidInput mean nothing was sent. Secrets (tokens, client secrets, API
// keys) never appear in errors or logs.
//
// # x-correlator
//
// The requestID of every call is sent as the x-correlator header. QoD 1.1.0
// constrains it to ^[a-zA-Z0-9-_:;./<>{}]{0,256}$ (ValidCorrelator); an id
// that does not fit is left out of the request, with a warning in the log,
// rather than failing a call over a tracing header.
//
// # Timeouts
//
// Each attempt is bounded by Options.Timeout (default 10s) on top of the
// caller's ctx, the OAuth2 token request it needs included (so a call that
// is retried after a 401 may take up to twice that). A call that ran out of
// it fails with an error wrapping ErrTimeout and context.DeadlineExceeded; a
// call whose ctx was cancelled fails with the ctx's error and is not
// retryable.
//
// A Client is safe for concurrent use.
//
// Imports: bridge of ours only; never config, sinks or cmd.
package qodapi

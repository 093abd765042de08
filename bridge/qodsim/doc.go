// Package qodsim is a CAMARA Quality-on-Demand simulator: an HTTP API that
// behaves like an operator's QoD API and sends real status notifications to
// each session's sink. It is for demos, tests and benchmarks: application
// teams cannot test against an operator's network, so the Network-as-Code
// documentation offers simulated devices, and this package offers the same
// without a network. qodbridge uses it as `qodbridge sim` and as the QoD API
// of its zero-config default.
//
// # Use
//
//	sim, err := qodsim.New(qodsim.Options{Tokens: []string{"secret"}})
//	if err != nil { … }
//	defer sim.Close()
//	err = sim.ListenAndServe(ctx, "127.0.0.1:8090") // or serve sim.Handler() yourself
//
// The zero Options work: no authentication, the default profiles and
// scenario devices, and the defaults named on each Options field.
// Options.RegisterFlags maps every setting to a command-line flag. For
// clients, scopes and three-legged tokens, see OAuth mode below:
//
//	sim, err := qodsim.New(qodsim.Options{OAuth: qodsim.OAuth{Clients: []qodsim.OAuthClient{{ID: "app", Secret: "app-secret"}}}})
//
// # API
//
// Handler serves the latest stable release, QoD 1.1.0
// (quality-on-demand-1.1.0.yaml), under /quality-on-demand/v1:
//
//	POST   /sessions                 create; 201 SessionInfo
//	GET    /sessions/{sessionId}     read;   200 SessionInfo
//	POST   /sessions/{sessionId}/extend     200 SessionInfo
//	DELETE /sessions/{sessionId}     204
//	POST   /retrieve-sessions        the sessions of a device; 200 [SessionInfo] (empty array for none)
//
// its companion QoS Profiles 1.1.0 (qos-profiles-1.1.0.yaml) under
// /qos-profiles/v1, which is how a client learns a profile's status and
// its minimum and maximum duration:
//
//	POST   /retrieve-qos-profiles    the profiles matching name, status and device; 200 [QosProfile]
//	GET    /qos-profiles/{name}      200 QosProfile
//
// (the profiles are Options.Profiles, the very ones create and extend
// enforce; durations in Seconds; without a device, profiles restricted to
// devices are left out; a device with no profile gets []), and the QoD
// 0.10.1 dialect (quality-on-demand-0.10.1.yaml, the one Network
// as Code's /qod/v0 follows) under /qod/v0: the same session calls with v0
// shapes (webhook{notificationUrl, notificationAuthToken}, times as Unix
// seconds, duration optional with 86400 as default) and GET /qos-profiles,
// GET /qos-profiles/{name}. Both APIs share one store: a session created on
// one can be read on the other.
//
// Each API also accepts the other's notification target: sink +
// sinkCredential{credentialType: ACCESSTOKEN, accessToken,
// accessTokenExpiresUtc, accessTokenType: bearer} or webhook. Answers never
// echo a credential. A v1 answer carries one device identifier (the phone
// number, else the IPv4, else the IPv6 address, else the access identifier
// of a session created on v0); a v0 answer carries the device as given.
//
// Device identifiers: QoD 1.1.0 keeps networkAccessIdentifier in its Device
// schema "only for future-proofing, and CAMARA does not currently allow its
// use" (Device, NOTE2). So /quality-on-demand/v1 checks that it is a string
// and then ignores it: a device given by it alone is 422
// UNSUPPORTED_IDENTIFIER (create and retrieve-sessions alike), and beside
// another identifier it identifies nothing (no match, no scenario). /qod/v0,
// whose 0.10.1 spec and Network as Code use it, takes it like any other
// identifier.
//
// Errors are CAMARA ErrorInfo {"status", "code", "message"}, the message
// naming the field at fault ("duration: 0 is outside 1 to 2147483647
// seconds"):
//
//	400 INVALID_ARGUMENT     malformed JSON, missing or ill-typed field, bad identifier, device {}
//	400 OUT_OF_RANGE         a number outside its schema range (duration < 1, a port)
//	400 QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE  duration outside the profile's bounds (v0: OUT_OF_RANGE)
//	400 INVALID_SINK         sink not an absolute http(s) URL; http:// with Strict (v0: INVALID_ARGUMENT)
//	400 INVALID_CREDENTIAL / INVALID_TOKEN  a credentialType other than ACCESSTOKEN / a token type other than bearer
//	401 UNAUTHENTICATED      Options.Tokens set and no matching Authorization: Bearer; in OAuth
//	                         mode a token missing, not issued by this simulator, or expired
//	403 PERMISSION_DENIED    OAuth mode: the token lacks the operation's scope, the session is
//	                         another client's, or not for the device of a three-legged token
//	404 NOT_FOUND            unknown sessionId (a malformed one is 400), unknown path
//	405 METHOD_NOT_ALLOWED   with Allow
//	409 CONFLICT             the device already has a session that is REQUESTED or AVAILABLE, or one that
//	                         ended NETWORK_TERMINATED and was not deleted yet (the spec keeps its resources)
//	409 QUALITY_ON_DEMAND.SESSION_EXTENSION_NOT_ALLOWED  extend of a session that is not AVAILABLE (v0: 400)
//	422 MISSING_IDENTIFIER   no device (v0: 400, device is required there)
//	422 UNSUPPORTED_IDENTIFIER  a v1 device given by networkAccessIdentifier alone
//	422 UNNECESSARY_IDENTIFIER  a device in the body with a three-legged token (even the same device)
//	404 IDENTIFIER_NOT_FOUND, 422 SERVICE_NOT_APPLICABLE  scenario devices (below)
//	422 QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE  a profile whose Status is not ACTIVE, or that
//	                         is not available to the device (v0: 400 INVALID_ARGUMENT)
//	429 TOO_MANY_REQUESTS    rate-limited scenario device, with Retry-After
//	429 QUOTA_EXCEEDED       Options.MaxSessions reached, with Retry-After
//	500 INTERNAL             server-error scenario device
//	503 UNAVAILABLE          after Close or Shutdown began
//
// A valid x-correlator header is echoed on every answer; an invalid one is a
// 400. Profiles: QOS_E, QOS_S, QOS_M and QOS_L by default, each allowing 1s
// to 24h; Options.Profiles replaces them.
//
// Deliberate leniency: an http:// sink is accepted, and echoed, although the
// spec demands https://, because local receivers rarely have certificates;
// Options.Strict enforces the spec. The echoed http:// sink is the only way
// an answer can deviate from the spec. With Strict, a v0
// notificationAuthToken must also have its 20 to 256 characters.
//
// # OAuth mode
//
// Off by default. Options.OAuth.Clients (the -oauth-client ID:SECRET flag,
// repeatable, or QODBRIDGE_SIM_OAUTH_CLIENTS for `qodbridge sim`) turns it
// on, and then every call of the three APIs needs an access token that
// this simulator issued:
//
//	POST /oauth2/token        RFC 6749 token endpoint, form-encoded, client authenticated by HTTP
//	                          Basic or client_id + client_secret in the body:
//	                          grant_type=client_credentials [scope=…] → a two-legged token
//	                          grant_type=urn:openid:params:grant-type:ciba auth_req_id=… → a
//	                          three-legged token for the device of the auth_req_id
//	POST /oauth2/bc-authorize OpenID CIBA, poll mode: login_hint=tel:+<E.164> (the + form-encoded
//	                          as %2B; an unencoded one, read as a space, is taken for +) or
//	                          ipport:<IPv4>:<port> or ipport:[<IPv6>]:<port>, [scope=openid …]
//	                          → {auth_req_id, expires_in: 120, interval: 1}; the simulated user
//	                          consents at once, so the first token request gets the token
//	GET  /.well-known/openid-configuration  the endpoints (no ID tokens: not a full provider)
//
// The answer is {access_token, token_type: Bearer, expires_in, scope}. A
// token lasts OAuth.TokenTTL (-oauth-token-ttl, 1h by default) on the
// Sim's Clock. A token request may ask for less with the simulator's
// expires_in parameter, 0 to TokenTTL seconds; expires_in=0 gives a token
// that is expired already, which is how a test gets one for a 401. The
// scopes are the specs': quality-on-demand:sessions:create, …:read,
// …:update, …:delete, …:retrieve-by-device and qos-profiles:read. A
// request without scope (or with only openid) gets every scope the client
// may have (OAuthClient.Scopes; all for -oauth-client clients); one for a
// scope the client may not have is invalid_scope. Errors of these
// endpoints are RFC 6749 {error, error_description} (invalid_client 401,
// invalid_request, invalid_grant, invalid_scope, unsupported_grant_type,
// expired_token, unknown_user_id for a not-found scenario device), not
// CAMARA ErrorInfo: they are not CAMARA APIs.
//
// In the APIs: each operation of /quality-on-demand/v1 and /qos-profiles/v1
// needs its scope (403 PERMISSION_DENIED otherwise, before the body is
// read); a session belongs to the client that created it, and another
// client reading, extending or deleting it gets 403 (retrieve-sessions
// lists only the caller's sessions; a 409 does not name another client's
// session). A three-legged token names the device: the request must not
// (422 UNNECESSARY_IDENTIFIER, even for the same device), a create without
// a device is for the token's device (and its answers leave device out, as
// it was not given), retrieve-sessions and retrieve-qos-profiles without a
// device are about it, a session of another device is 403, and
// getQosProfile finds only profiles available to it. /qod/v0 needs a token
// too and keeps sessions per client, but checks no scopes (QoD 0.10.1's
// client credentials carry none) and ignores a token's device (its device
// is required in the body).
//
// Sim.IssueToken mints the same tokens without HTTP: three-legged,
// narrowly scoped or expired ones for tests. Tokens are self-contained
// (HMAC-SHA256 with a key drawn by New): nothing is stored per token, so
// memory does not grow with tokens, and a restarted simulator refuses the
// old ones. An auth_req_id works the same way and can be redeemed until it
// expires. Options.Tokens and OAuth exclude each other.
//
// # CAMARA test definitions
//
// The official test definitions of release r3.2 (the quality-on-demand-*
// and qos-profiles-*.feature files of camaraproject/QualityOnDemand, for
// QoD 1.1.0 and QoS Profiles 1.1.0) run against a simulator started so:
//
//	qodbridge sim -oauth-client app:app-secret -oauth-client other:other-secret -profile-status QOS_OLD=DEPRECATED -profile-device QOS_VIP=+99999991005
//
// with apiRoot http://127.0.0.1:8090 and these testing assets:
//
//	valid access token          POST /oauth2/token grant_type=client_credentials as app (every scope)
//	token without scope X       the same with scope= every other scope
//	expired access token        the same with expires_in=0
//	invalid access token        any other string
//	token of another client     the same as other (for 403.2)
//	token identifying a device  POST /oauth2/bc-authorize login_hint=tel:+36700000001, then
//	                            grant_type=urn:openid:params:grant-type:ciba with the auth_req_id
//	valid device                any phone number not in a scenario list, e.g. +36700000001;
//	                            its session is AVAILABLE after 1s (+99999991003: at once)
//	device not found            +99999991404
//	device not applicable       +99999991422 (QoD and C01.07 of qos-profiles)
//	device with no QoS profile  +99999991004 (retrieveQoSProfiles_06)
//	unsupported identifier      networkAccessIdentifier (CAMARA does not allow it)
//	profile not applicable      QOS_OLD (DEPRECATED); non-existent: any other name
//	restricted profile, device  QOS_VIP, +99999991005
//	session that failed         one for +99999991002: UNAVAILABLE / NETWORK_TERMINATED after 1s,
//	                            readable for 360s
//	events                      a sink the simulator can reach, with sinkCredential ACCESSTOKEN
//
// Every scenario then passes, and the package's TestConformance runs each
// of them (each row of an outline too) in-process with these settings,
// named by its tag, so a regression names the CAMARA scenario it breaks.
// Where a feature contradicts the 1.1.0 specs, the spec wins; the
// simulator is held to the spec's text in these steps:
//
//   - quality_on_demand_createSession_02_2_event_received and
//     quality_on_demand_deleteSession_02_event_notification expect the
//     event type "org.camaraproject.qod.v1.qos-status-changed";
//     quality-on-demand-1.1.0.yaml, CloudEvent.type: enum:
//     ["org.camaraproject.quality-on-demand.v1.qos-status-changed"]. The
//     simulator sends that one.
//   - quality_on_demand_createSession_400.9_invalid_duration expects
//     INVALID_ARGUMENT for a duration outside the profile's range;
//     quality-on-demand-1.1.0.yaml, CreateSessionBadRequest400,
//     DurationOutOfRangeForQoSProfile: code
//     QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE, "The requested duration is
//     out of the allowed range for the specific QoS profile". The
//     simulator answers that code.
//   - quality_on_demand_deleteSession_01_delete_existing_qod_session
//     expects a Content-Type header "application/json" on the 204;
//     quality-on-demand-1.1.0.yaml, deleteSession: "204": description:
//     Session deleted, with no content schema: a 204 carries no content
//     for a Content-Type to describe. The simulator sends none there.
//   - qos_profiles_getQosProfile_01_generic_success_scenario expects "each
//     item of the response array" to be a QosProfile;
//     qos-profiles-1.1.0.yaml, getQosProfile: "200": schema: $ref:
//     "#/components/schemas/QosProfile", one object. The simulator answers
//     one QosProfile.
//
// Readings where a feature is ambiguous rather than contrary:
//
//   - qos_profiles_retrieveQoSProfiles_06_device_qos_profiles_not_found
//     ("a device for which the service is not applicable" → 200 []) and
//     qos_profiles_retrieveQoSProfiles_C01.07_device_not_supported (the
//     same words → 422 SERVICE_NOT_APPLICABLE) cannot both hold for one
//     device; the spec allows both answers. The simulator has a device for
//     each: +99999991422 (not applicable, 422) and +99999991004 (no QoS
//     profile, [], as the title of 06 says).
//   - The success scenarios' rule "startedAt exists only if qosStatus is
//     AVAILABLE" would refuse startedAt on a session that was AVAILABLE
//     and ended; quality-on-demand-1.1.0.yaml keeps it (SessionInfo:
//     startedAt "Not to be returned when qosStatus is REQUESTED"; duration
//     "When qosStatus is UNAVAILABLE, the value is the overall effective
//     duration since startedAt until the session was terminated"). The
//     simulator follows the spec; no r3.2 scenario reads such a session.
//   - "The request body is set to any value which is not compliant with
//     the schema" (400.1 of createSession, extendQosSessionDuration,
//     retrieve…) expects INVALID_ARGUMENT. A number outside its schema
//     range gets OUT_OF_RANGE ("a given field has a pre-defined range", the
//     spec's Generic400 example, which createSession_400.5 accepts); any
//     other violation gets INVALID_ARGUMENT, and the run uses such one.
//
// # Life cycle
//
// A session is REQUESTED when created, AVAILABLE after Options.AvailableDelay
// (1s by default), and UNAVAILABLE with statusInfo DURATION_EXPIRED when its
// duration has passed since it became AVAILABLE, or DELETE_REQUESTED when it
// is deleted while REQUESTED or AVAILABLE. Extend moves the expiry of an
// AVAILABLE session, capped at the profile's MaxDuration (v1: the overall
// duration; v0: the remaining duration, as each spec says). A deleted session
// is gone at once (404); a session that turned UNAVAILABLE on its own stays
// readable for Options.Retention (360s, the spec's figure) and is then
// removed. Timers, retry waits and timestamps come from Options.Clock, so a
// test with a ManualClock drives a whole life with Advance, without sleeping.
//
// # Notifications
//
// Every status change of a session with a sink (AVAILABLE; UNAVAILABLE with
// its statusInfo) is POSTed to the sink as a CloudEvent 1.0 with a fresh
// UUID as id, source EventSource + base path + "/sessions/" + sessionId (by
// default https://qodsim.local/quality-on-demand/v1/sessions/<id>), time in
// RFC 3339 UTC with milliseconds, datacontenttype application/json, and
// data {sessionId, qosStatus, statusInfo}. Options.Format picks the shape:
// FormatCAMARAv1 (the 1.1.0 callback, type
// org.camaraproject.quality-on-demand.v1.qos-status-changed,
// Content-Type: application/cloudevents+json), FormatCAMARAv0 (type
// org.camaraproject.qod.v0.qos-status-changed, Content-Type:
// application/json as platforms send it), or FormatNaC (the v0 event plus
// the legacy event{eventType: QOS_STATUS_CHANGED, eventTime, eventDetail}
// of Network as Code, statusInfo null when absent). By default a session
// created on /quality-on-demand/v1 sends v1 and one created on /qod/v0 sends
// v0. The request carries Authorization: Bearer with the session's
// sinkCredential.accessToken (v1) or webhook.notificationAuthToken (v0), and
// none without one; after accessTokenExpiresUtc nothing more is sent, as the
// spec says.
//
// Delivery: a 2xx answer is success. A network error, 408, 429 or 5xx is
// retried up to Options.MaxAttempts attempts in all, waiting
// RetryBackoff doubled per attempt with jitter, or the answer's Retry-After
// (seconds or HTTP date), each wait capped at RetryMaxBackoff. A retry sends
// the same bytes, so the same id: receivers deduplicate on source+id. Any
// other 4xx gives the notification up at once; 410 Gone also stops all later
// notifications of that session. A notification given up is logged and
// dropped, and the session's next one is still sent. Order: the
// notifications of one session are delivered one at a time, in the order of
// the changes; no order holds across sessions. At most Options.Senders
// deliveries run at once, from a fixed pool of goroutines.
//
// # Scenario devices
//
// As in the Network-as-Code simulator, some device identifiers script the
// outcome; Options.Scenarios replaces each list (the -scenario-* flags).
// The phone number (with or without "+") works on both APIs; the
// networkAccessIdentifier (any case) only on /qod/v0, because
// /quality-on-demand/v1 does not use that identifier (above: alone it is 422
// UNSUPPORTED_IDENTIFIER there, beside a phone number it is ignored):
//
//	v1 and v0       v0 only                          behaviour
//	+99999991001    unavailable@testcsp.net          REQUESTED, then UNAVAILABLE with no statusInfo
//	+99999991002    network-terminated@testcsp.net   REQUESTED, then UNAVAILABLE with NETWORK_TERMINATED
//	+99999991003    available@testcsp.net            create answers AVAILABLE; AVAILABLE notification (no
//	                                                 statusInfo) at once; then expires like any session
//	+99999991429    rate-limited@testcsp.net         every other create answers 429 TOO_MANY_REQUESTS with
//	                                                 Retry-After: 1, starting with the first; the retry succeeds
//	+99999991500    server-error@testcsp.net         every other create answers 500 INTERNAL, starting with
//	                                                 the first; the retry succeeds
//	+99999991404    not-found@testcsp.net            unknown to the network: create, retrieve-sessions and
//	                                                 retrieve-qos-profiles answer 404 IDENTIFIER_NOT_FOUND (v0
//	                                                 create too, beyond its spec's list); no three-legged token
//	+99999991422    not-applicable@testcsp.net       the service does not apply: those three answer 422
//	                                                 SERVICE_NOT_APPLICABLE (v0 create too, beyond its list)
//	+99999991004    no-profiles@testcsp.net          no QoS profile is available to it: retrieve-qos-profiles
//	                                                 answers [], create 422 QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE
//	                                                 (v0: 400 INVALID_ARGUMENT)
//
// The scripted change comes after AvailableDelay. The +999 numbers use a
// country code that is reserved, so they belong to no real subscriber. Any
// other device follows the normal life cycle. When a device matches several
// lists, not-found wins over not-applicable over no-profiles over the rest.
//
// A profile can be restricted to devices (Profile.Devices, the
// -profile-device flag): the qos-profiles API lists it only for them, and a
// create for another device is 422 QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE
// (v0: 400). A profile that is not ACTIVE (Profile.Status, the
// -profile-status flag) exists, is listed, and cannot be used to create a
// session (422, as above).
//
// # Limits
//
// The store is in memory and lost on exit. Options.MaxSessions bounds it,
// counting retained UNAVAILABLE sessions and deleted sessions whose
// notifications are still being sent: when it is full, retained sessions
// are dropped oldest first, then create answers 429 QUOTA_EXCEEDED. A
// session holds at most two notifications, so memory and goroutines are
// bounded. Without OAuth mode any configured static bearer token is
// accepted for every call, and every session is visible to every caller.
// A device is matched by its identifiers, not by the flow (application
// server, ports). A QosProfile carries name, description, status,
// minDuration and maxDuration, none of the optional rates and delays. The
// simulator POSTs to any URL it is given: do not expose it to untrusted
// callers.
//
// # Shutdown
//
// Shutdown(ctx) makes the API answer 503, stops the timers, waits for the
// queued notifications until ctx is done, then cancels the rest; Close does
// the same without waiting. Both return once every sender goroutine has
// stopped. Serve and ListenAndServe stop the HTTP server when their ctx is
// done but leave the Sim running.
//
// Imports: bridge of ours only; it must not import the client
// (bridge/qodapi) it is used to test, nor config, sinks or cmd.
package qodsim

package qodclient

import (
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

// QoSStatus is a session's status: REQUESTED, AVAILABLE or UNAVAILABLE.
type QoSStatus = bridge.QoSStatus

// StatusInfo says why a session became UNAVAILABLE; empty when absent.
type StatusInfo = bridge.StatusInfo

// Session statuses and reasons, as the CAMARA QoD API defines them.
const (
	StatusRequested   = bridge.StatusRequested
	StatusAvailable   = bridge.StatusAvailable
	StatusUnavailable = bridge.StatusUnavailable

	InfoDurationExpired   = bridge.InfoDurationExpired
	InfoNetworkTerminated = bridge.InfoNetworkTerminated
	InfoDeleteRequested   = bridge.InfoDeleteRequested
)

// Device identifies a device, as CAMARA's Device object: give at least one
// identifier. The bridge passes it to the QoD API unchanged.
type Device struct {
	PhoneNumber             string      `json:"phoneNumber,omitempty"`
	NetworkAccessIdentifier string      `json:"networkAccessIdentifier,omitempty"`
	IPv4Address             *DeviceIPv4 `json:"ipv4Address,omitempty"`
	IPv6Address             string      `json:"ipv6Address,omitempty"`
}

// DeviceIPv4 is a device's IPv4 address as the network sees it: the public
// address and either the private address or the public port.
type DeviceIPv4 struct {
	PublicAddress  string `json:"publicAddress"`
	PrivateAddress string `json:"privateAddress,omitempty"`
	PublicPort     int    `json:"publicPort,omitempty"`
}

// ApplicationServer is the server the device talks to (an address or a
// network, IPv4 and/or IPv6).
type ApplicationServer struct {
	IPv4Address string `json:"ipv4Address,omitempty"`
	IPv6Address string `json:"ipv6Address,omitempty"`
}

// Ports are ports and port ranges.
type Ports struct {
	Ranges []PortRange `json:"ranges,omitempty"`
	Ports  []int       `json:"ports,omitempty"`
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// SinkCredential is the credential the QoD platform sends to Sink.
type SinkCredential struct {
	CredentialType        string    `json:"credentialType"` // ACCESSTOKEN
	AccessToken           string    `json:"accessToken,omitempty"`
	AccessTokenExpiresUtc time.Time `json:"accessTokenExpiresUtc,omitzero"`
	AccessTokenType       string    `json:"accessTokenType,omitempty"` // bearer
}

// CreateSession is CAMARA QoD 1.x's CreateSession body. Leave Sink empty
// to have the session's status changes come back through the bridge (see
// Client.Watch): the bridge then sets its own notification URL and a
// per-session credential.
type CreateSession struct {
	Device                 *Device           `json:"device,omitempty"`
	ApplicationServer      ApplicationServer `json:"applicationServer"`
	DevicePorts            *Ports            `json:"devicePorts,omitempty"`
	ApplicationServerPorts *Ports            `json:"applicationServerPorts,omitempty"`
	QoSProfile             string            `json:"qosProfile"`
	Sink                   string            `json:"sink,omitempty"`
	SinkCredential         *SinkCredential   `json:"sinkCredential,omitempty"`
	// Duration in seconds.
	Duration int `json:"duration"`
}

// Session is CAMARA QoD 1.x's SessionInfo, as the bridge reports it (the
// v0 dialect already translated, timestamps in RFC 3339, the sink
// credential left out).
type Session struct {
	SessionID              string            `json:"sessionId"`
	Device                 *Device           `json:"device,omitempty"`
	ApplicationServer      ApplicationServer `json:"applicationServer"`
	DevicePorts            *Ports            `json:"devicePorts,omitempty"`
	ApplicationServerPorts *Ports            `json:"applicationServerPorts,omitempty"`
	QoSProfile             string            `json:"qosProfile"`
	Sink                   string            `json:"sink,omitempty"`
	// Duration in seconds: requested, or, once UNAVAILABLE, effective.
	Duration   int        `json:"duration"`
	StartedAt  time.Time  `json:"startedAt,omitzero"`
	ExpiresAt  time.Time  `json:"expiresAt,omitzero"`
	QoSStatus  QoSStatus  `json:"qosStatus"`
	StatusInfo StatusInfo `json:"statusInfo,omitempty"`
}

// StatusEvent is one status change of a session, as the bridge published it
// (the canonical CloudEvent of the status flow, decoded).
type StatusEvent struct {
	// ID and Source identify the event; a consumer that must not see one
	// twice deduplicates by both.
	ID     string
	Source string
	// Time is when the change happened, as the platform said; zero when it
	// said nothing.
	Time       time.Time
	SessionID  string
	QoSStatus  QoSStatus
	StatusInfo StatusInfo
	// Live is false for the events Watch and WatchAll deliver first, the
	// current status (the last event stored for each session when the
	// watch began; an event stored while those are delivered may be
	// counted among them), and true for the changes that follow.
	Live bool
}

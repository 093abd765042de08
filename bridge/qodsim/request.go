package qodsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"time"
)

// apiError is an error answer: CAMARA ErrorInfo {status, code, message}.
type apiError struct {
	status     int
	code       string
	msg        string
	retryAfter int    // seconds; 0: no Retry-After header
	wwwAuthErr string // error of a 401's WWW-Authenticate (RFC 6750), if any
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

// CAMARA error codes the simulator answers with.
const (
	codeInvalidArgument        = "INVALID_ARGUMENT"
	codeOutOfRange             = "OUT_OF_RANGE"
	codeDurationOutOfRange     = "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE"
	codeInvalidSink            = "INVALID_SINK"
	codeInvalidCredential      = "INVALID_CREDENTIAL"
	codeInvalidToken           = "INVALID_TOKEN"
	codeUnauthenticated        = "UNAUTHENTICATED"
	codePermissionDenied       = "PERMISSION_DENIED"
	codeUnnecessaryIdentifier  = "UNNECESSARY_IDENTIFIER"
	codeNotFound               = "NOT_FOUND"
	codeMethodNotAllowed       = "METHOD_NOT_ALLOWED"
	codeConflict               = "CONFLICT"
	codeExtensionNotAllowed    = "QUALITY_ON_DEMAND.SESSION_EXTENSION_NOT_ALLOWED"
	codeMissingIdentifier      = "MISSING_IDENTIFIER"
	codeUnsupportedIdentifier  = "UNSUPPORTED_IDENTIFIER"
	codeIdentifierNotFound     = "IDENTIFIER_NOT_FOUND"
	codeServiceNotApplicable   = "SERVICE_NOT_APPLICABLE"
	codeProfileNotApplicable   = "QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE"
	codeTooManyRequests        = "TOO_MANY_REQUESTS"
	codeQuotaExceeded          = "QUOTA_EXCEEDED"
	codeInternal               = "INTERNAL"
	codeUnavailable            = "UNAVAILABLE"
	maxBody                    = 64 << 10
	maxInt32                   = math.MaxInt32
	v0MaxDuration              = 86400
	v0MaxAdditionalDuration    = 86399
	v0MinNotificationTokenSize = 20
	v0MaxNotificationTokenSize = 256
)

// errMissingIdentifier answers a v1 request with no device and a token
// that names none.
func errMissingIdentifier() *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, code: codeMissingIdentifier,
		msg: "device: required: the device cannot be identified from the access token"}
}

// errUnsupportedIdentifier answers a v1 device given by
// networkAccessIdentifier alone.
func errUnsupportedIdentifier() *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, code: codeUnsupportedIdentifier,
		msg: "device: networkAccessIdentifier is not supported: QoD 1.1.0 does not allow its use (Device, NOTE2); give phoneNumber, ipv4Address or ipv6Address"}
}

func invalid(field, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: codeInvalidArgument, msg: field + ": " + fmt.Sprintf(format, args...)}
}

func outOfRange(field, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: codeOutOfRange, msg: field + ": " + fmt.Sprintf(format, args...)}
}

// ---- wire shapes of what the simulator answers ----

type device struct {
	PhoneNumber             string      `json:"phoneNumber,omitempty"`
	NetworkAccessIdentifier string      `json:"networkAccessIdentifier,omitempty"`
	IPv4Address             *deviceIPv4 `json:"ipv4Address,omitempty"`
	IPv6Address             string      `json:"ipv6Address,omitempty"`
}

type deviceIPv4 struct {
	PublicAddress  string `json:"publicAddress"`
	PrivateAddress string `json:"privateAddress,omitempty"`
	PublicPort     *int64 `json:"publicPort,omitempty"`
}

// one returns the single identifier a v1 answer carries (DeviceResponse has
// maxProperties 1): the phone number, else the IPv4 address, else the IPv6
// address, else the access identifier (which only a session created on v0
// can have alone: v1 does not use it). A phone number given to v0 without
// "+" gets one; one that still is no E.164 number is skipped. Nil when no
// identifier fits v1 (the device is optional in a v1 SessionInfo).
func (d device) one() *device {
	if p := d.PhoneNumber; p != "" {
		if !strings.HasPrefix(p, "+") {
			p = "+" + p
		}
		if phoneV1RE.MatchString(p) {
			return &device{PhoneNumber: p}
		}
	}
	switch {
	case d.IPv4Address != nil:
		return &device{IPv4Address: d.IPv4Address}
	case d.IPv6Address != "":
		return &device{IPv6Address: d.IPv6Address}
	case d.NetworkAccessIdentifier != "":
		return &device{NetworkAccessIdentifier: d.NetworkAccessIdentifier}
	}
	return nil
}

type appServer struct {
	IPv4Address string `json:"ipv4Address,omitempty"`
	IPv6Address string `json:"ipv6Address,omitempty"`
}

type portsSpec struct {
	Ranges []portRange `json:"ranges,omitempty"`
	Ports  []int64     `json:"ports,omitempty"`
}

type portRange struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// ---- wire shapes of requests: pointers tell absent from empty ----

type deviceIn struct {
	PhoneNumber             *string `json:"phoneNumber"`
	NetworkAccessIdentifier *string `json:"networkAccessIdentifier"`
	IPv4Address             *struct {
		PublicAddress  *string `json:"publicAddress"`
		PrivateAddress *string `json:"privateAddress"`
		PublicPort     *int64  `json:"publicPort"`
	} `json:"ipv4Address"`
	IPv6Address *string `json:"ipv6Address"`
}

type portsIn struct {
	Ranges *[]struct {
		From *int64 `json:"from"`
		To   *int64 `json:"to"`
	} `json:"ranges"`
	Ports *[]int64 `json:"ports"`
}

type createIn struct {
	Device            *deviceIn `json:"device"`
	ApplicationServer *struct {
		IPv4Address *string `json:"ipv4Address"`
		IPv6Address *string `json:"ipv6Address"`
	} `json:"applicationServer"`
	DevicePorts            *portsIn `json:"devicePorts"`
	ApplicationServerPorts *portsIn `json:"applicationServerPorts"`
	QosProfile             *string  `json:"qosProfile"`
	Duration               *int64   `json:"duration"`
	Sink                   *string  `json:"sink"`
	SinkCredential         *struct {
		CredentialType        *string `json:"credentialType"`
		AccessToken           *string `json:"accessToken"`
		AccessTokenExpiresUtc *string `json:"accessTokenExpiresUtc"`
		AccessTokenType       *string `json:"accessTokenType"`
	} `json:"sinkCredential"`
	Webhook *struct {
		NotificationURL       *string `json:"notificationUrl"`
		NotificationAuthToken *string `json:"notificationAuthToken"`
	} `json:"webhook"`
}

type extendIn struct {
	RequestedAdditionalDuration *int64 `json:"requestedAdditionalDuration"`
}

type retrieveIn struct {
	Device *deviceIn `json:"device"`
}

// createParams is a validated create request.
type createParams struct {
	dev          device
	devFromToken bool // the device is the three-legged token's, not the body's
	keys         []string
	app          appServer
	devPorts     *portsSpec
	appPorts     *portsSpec
	profile      Profile
	duration     int64
	sink         string
	sinkV0       bool
	token        string
	tokenExpiry  time.Time
}

// decodeBody reads the JSON object of r into v, answering with the field
// that is wrong.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return invalid("request body", "data after the JSON object")
		}
		return nil
	}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		big *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF):
		return invalid("request body", "required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("request body", "invalid JSON: it ends too early")
	case errors.As(err, &big):
		return invalid("request body", "larger than %d bytes", big.Limit)
	case errors.As(err, &syn):
		return invalid("request body", "invalid JSON at offset %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return invalid("request body", "must be a JSON object, not %s", typ.Value)
		}
		return invalid(typ.Field, "must be %s, not JSON %s", jsonKind(typ.Type), typ.Value)
	}
	return invalid("request body", "%v", err)
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int64, reflect.Int, reflect.Int32:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

var (
	phoneV1RE    = regexp.MustCompile(`^\+[1-9][0-9]{4,14}$`)
	phoneV0RE    = regexp.MustCompile(`^\+?[0-9]{5,15}$`)
	correlatorRE = regexp.MustCompile(`^[a-zA-Z0-9-_:;./<>{}]{0,256}$`)
	uuidRE       = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// parseDevice validates a device and returns it with its index keys. The
// keys of phone numbers and access identifiers are scenario keys too. On v1
// a networkAccessIdentifier is checked but yields no key: QoD 1.1.0 does not
// allow its use (Device, NOTE2), so it identifies nothing there, and a device
// given by it alone has no keys (the caller answers 422
// UNSUPPORTED_IDENTIFIER once every 400 check passed).
func parseDevice(d dialect, in *deviceIn) (device, []string, *apiError) {
	var (
		dev  device
		keys []string
	)
	if in.PhoneNumber == nil && in.NetworkAccessIdentifier == nil && in.IPv4Address == nil && in.IPv6Address == nil {
		return dev, nil, invalid("device", "give at least one of phoneNumber, networkAccessIdentifier, ipv4Address, ipv6Address")
	}
	if p := in.PhoneNumber; p != nil {
		re, want := phoneV1RE, "an E.164 number with a leading + (^\\+[1-9][0-9]{4,14}$)"
		if d == dialectV0 {
			re, want = phoneV0RE, "5 to 15 digits with an optional leading + (^\\+?[0-9]{5,15}$)"
		}
		if !re.MatchString(*p) {
			return dev, nil, invalid("device.phoneNumber", "%q is not %s", *p, want)
		}
		dev.PhoneNumber = *p
		keys = append(keys, scenarioKey(*p))
	}
	if n := in.NetworkAccessIdentifier; n != nil {
		if strings.TrimSpace(*n) == "" {
			return dev, nil, invalid("device.networkAccessIdentifier", "empty")
		}
		dev.NetworkAccessIdentifier = *n
		if d == dialectV0 {
			keys = append(keys, scenarioKey(*n))
		}
	}
	if v4 := in.IPv4Address; v4 != nil {
		if v4.PublicAddress == nil {
			return dev, nil, invalid("device.ipv4Address.publicAddress", "required")
		}
		if !isIPv4(*v4.PublicAddress) {
			return dev, nil, invalid("device.ipv4Address.publicAddress", "%q is not an IPv4 address", *v4.PublicAddress)
		}
		out := &deviceIPv4{PublicAddress: *v4.PublicAddress}
		if v4.PrivateAddress != nil {
			if !isIPv4(*v4.PrivateAddress) {
				return dev, nil, invalid("device.ipv4Address.privateAddress", "%q is not an IPv4 address", *v4.PrivateAddress)
			}
			out.PrivateAddress = *v4.PrivateAddress
		}
		if v4.PublicPort != nil {
			if *v4.PublicPort < 0 || *v4.PublicPort > 65535 {
				return dev, nil, outOfRange("device.ipv4Address.publicPort", "%d is not a port (0 to 65535)", *v4.PublicPort)
			}
			port := *v4.PublicPort
			out.PublicPort = &port
		}
		if v4.PrivateAddress == nil && v4.PublicPort == nil {
			return dev, nil, invalid("device.ipv4Address", "give privateAddress or publicPort with publicAddress")
		}
		dev.IPv4Address = out
		keys = append(keys, ip4Key(out))
	}
	if v6 := in.IPv6Address; v6 != nil {
		a, err := netip.ParseAddr(*v6)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return dev, nil, invalid("device.ipv6Address", "%q is not an IPv6 address", *v6)
		}
		dev.IPv6Address = *v6
		keys = append(keys, ip6Key(a))
	}
	return dev, keys, nil
}

// ip4Key is the index key of a device's IPv4 identifier.
func ip4Key(a *deviceIPv4) string {
	k := "ip4:" + a.PublicAddress + "/" + a.PrivateAddress
	if a.PublicPort != nil {
		k += fmt.Sprintf(":%d", *a.PublicPort)
	}
	return k
}

// ip6Key is the index key of a device's IPv6 address.
func ip6Key(a netip.Addr) string { return "ip6:" + a.String() }

// errUnnecessaryIdentifier answers a device in the body of a request whose
// three-legged access token names the device already.
func errUnnecessaryIdentifier() *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, code: codeUnnecessaryIdentifier,
		msg: "device: The device is already identified by the access token: leave device out"}
}

func isIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

// isIPOrPrefix reports whether s is an address or address/mask of the
// family.
func isIPOrPrefix(s string, v4 bool) bool {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Is4() == v4 && p.Addr().Zone() == ""
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4() == v4 && a.Zone() == ""
}

func parsePorts(field string, in *portsIn) (*portsSpec, *apiError) {
	if in == nil {
		return nil, nil
	}
	if in.Ranges == nil && in.Ports == nil {
		return nil, invalid(field, "give ranges or ports")
	}
	out := &portsSpec{}
	if in.Ranges != nil {
		if len(*in.Ranges) == 0 {
			return nil, invalid(field+".ranges", "must not be empty")
		}
		for i, r := range *in.Ranges {
			f := fmt.Sprintf("%s.ranges[%d]", field, i)
			if r.From == nil {
				return nil, invalid(f+".from", "required")
			}
			if r.To == nil {
				return nil, invalid(f+".to", "required")
			}
			if *r.From < 0 || *r.From > 65535 {
				return nil, outOfRange(f+".from", "%d is not a port (0 to 65535)", *r.From)
			}
			if *r.To < 0 || *r.To > 65535 {
				return nil, outOfRange(f+".to", "%d is not a port (0 to 65535)", *r.To)
			}
			if *r.From > *r.To {
				return nil, outOfRange(f, "from %d is above to %d", *r.From, *r.To)
			}
			out.Ranges = append(out.Ranges, portRange{From: *r.From, To: *r.To})
		}
	}
	if in.Ports != nil {
		if len(*in.Ports) == 0 {
			return nil, invalid(field+".ports", "must not be empty")
		}
		for i, p := range *in.Ports {
			if p < 0 || p > 65535 {
				return nil, outOfRange(fmt.Sprintf("%s.ports[%d]", field, i), "%d is not a port (0 to 65535)", p)
			}
		}
		out.Ports = append([]int64(nil), *in.Ports...)
	}
	return out, nil
}

// parseSinkURL checks a notification URL; field names the request field.
func (s *Sim) parseSinkURL(field, raw string, sinkCode string) *apiError {
	u, err := url.Parse(raw)
	bad := func(format string, args ...any) *apiError {
		return &apiError{status: http.StatusBadRequest, code: sinkCode, msg: field + ": " + fmt.Sprintf(format, args...)}
	}
	switch {
	case err != nil:
		return bad("%q is not a URL: %v", raw, err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return bad("%q is not an absolute http(s) URL", raw)
	case s.cfg.Strict && u.Scheme != "https":
		return bad("%q: the spec demands https:// (the simulator runs with Strict)", raw)
	case !s.sinkAllowed(u):
		return bad("%q is not a notification target this simulator may call: allowed are %s", raw, strings.Join(s.cfg.AllowedSinks, ", "))
	}
	return nil
}

// sinkAllowed reports whether u is under one of Options.AllowedSinks (any
// sink when there are none): the same scheme and host, the same port when
// the allowed URL names one, and, when it has a path, a path under it.
// Compared parsed, so that "http://127.0.0.1:80@evil.example/" is not
// taken for a loopback URL; a sink with user info is never allowed then.
func (s *Sim) sinkAllowed(u *url.URL) bool {
	if len(s.cfg.AllowedSinks) == 0 {
		return true
	}
	if u.User != nil {
		return false
	}
	for _, raw := range s.cfg.AllowedSinks {
		a, err := url.Parse(raw) // checked by New
		if err != nil || a.Scheme != u.Scheme || !strings.EqualFold(a.Hostname(), u.Hostname()) {
			continue
		}
		if a.Port() != "" && a.Port() != u.Port() {
			continue
		}
		prefix := strings.TrimSuffix(a.Path, "/")
		if prefix == "" || u.Path == prefix || strings.HasPrefix(u.Path, prefix+"/") {
			return true
		}
	}
	return false
}

// parseCreate validates a create request like the spec of dialect d says.
// The device is the body's or, on v1, the three-legged token's.
func (s *Sim) parseCreate(d dialect, in *createIn, c *caller) (*createParams, *apiError) {
	p := &createParams{}
	if in.Device != nil {
		dev, keys, err := parseDevice(d, in.Device)
		if err != nil {
			return nil, err
		}
		p.dev, p.keys = dev, keys
	}

	as := in.ApplicationServer
	if as == nil {
		return nil, invalid("applicationServer", "required")
	}
	if as.IPv4Address == nil && as.IPv6Address == nil {
		return nil, invalid("applicationServer", "give ipv4Address or ipv6Address")
	}
	if as.IPv4Address != nil {
		if !isIPOrPrefix(*as.IPv4Address, true) {
			return nil, invalid("applicationServer.ipv4Address", "%q is not an IPv4 address or address/mask", *as.IPv4Address)
		}
		p.app.IPv4Address = *as.IPv4Address
	}
	if as.IPv6Address != nil {
		if !isIPOrPrefix(*as.IPv6Address, false) {
			return nil, invalid("applicationServer.ipv6Address", "%q is not an IPv6 address or address/mask", *as.IPv6Address)
		}
		p.app.IPv6Address = *as.IPv6Address
	}
	var err *apiError
	if p.devPorts, err = parsePorts("devicePorts", in.DevicePorts); err != nil {
		return nil, err
	}
	if p.appPorts, err = parsePorts("applicationServerPorts", in.ApplicationServerPorts); err != nil {
		return nil, err
	}

	if in.QosProfile == nil {
		return nil, invalid("qosProfile", "required")
	}
	name := *in.QosProfile
	if !profileNameRE.MatchString(name) {
		return nil, invalid("qosProfile", "%q is not 3 to 256 of [a-zA-Z0-9_.-]", name)
	}
	prof, ok := s.cfg.profiles[name]
	if !ok {
		return nil, invalid("qosProfile", "unknown profile %q; offered: %s", name, strings.Join(s.cfg.order, ", "))
	}
	p.profile = prof
	minD, maxD := int64(prof.MinDuration/time.Second), int64(prof.MaxDuration/time.Second)

	switch {
	case in.Duration != nil:
		p.duration = *in.Duration
	case d == dialectV0: // optional in v0: 24 hours, or what the profile allows
		p.duration = min(v0MaxDuration, maxD)
	default:
		return nil, invalid("duration", "required")
	}
	limit := int64(maxInt32)
	if d == dialectV0 {
		limit = v0MaxDuration
	}
	if p.duration < 1 || p.duration > limit {
		return nil, outOfRange("duration", "%d is outside 1 to %d seconds", p.duration, limit)
	}
	if p.duration < minD || p.duration > maxD {
		code := codeDurationOutOfRange
		if d == dialectV0 {
			code = codeOutOfRange // v0 has no specific code
		}
		return nil, &apiError{status: http.StatusBadRequest, code: code,
			msg: fmt.Sprintf("duration: %d seconds is outside the %d to %d seconds allowed for qosProfile %s", p.duration, minD, maxD, name)}
	}

	if err := s.parseNotificationTarget(d, in, p); err != nil {
		return nil, err
	}

	// 422s come after every 400: the body is well-formed, the request is not
	// serviceable.
	switch {
	case d == dialectV1 && c.threeLegged() && in.Device != nil:
		return nil, errUnnecessaryIdentifier()
	case d == dialectV1 && c.threeLegged():
		p.dev, p.keys, p.devFromToken = *c.dev, c.keys, true
	case in.Device == nil:
		if d == dialectV0 {
			return nil, invalid("device", "required")
		}
		return nil, errMissingIdentifier()
	}
	if len(p.keys) == 0 {
		return nil, errUnsupportedIdentifier()
	}
	if err := s.deviceError(p.keys); err != nil {
		return nil, err // v0 too: CAMARA's common codes, beyond the 0.10.1 list
	}
	why := ""
	switch {
	case prof.Status != "ACTIVE":
		why = fmt.Sprintf("profile %s is %s and cannot be used to create a session", name, prof.Status)
	case !s.profileAvailable(name, p.keys):
		why = fmt.Sprintf("profile %s is not available to this device", name)
	}
	if why != "" {
		if d == dialectV0 {
			return nil, invalid("qosProfile", "%s", why)
		}
		return nil, &apiError{status: http.StatusUnprocessableEntity, code: codeProfileNotApplicable, msg: "qosProfile: " + why}
	}
	return p, nil
}

// parseNotificationTarget reads sink + sinkCredential (v1) or
// webhook{notificationUrl, notificationAuthToken} (v0); each API accepts both.
func (s *Sim) parseNotificationTarget(d dialect, in *createIn, p *createParams) *apiError {
	sinkCode := codeInvalidSink
	if d == dialectV0 {
		sinkCode = codeInvalidArgument // v0 has no INVALID_SINK
	}
	if in.Sink != nil && in.Webhook != nil {
		return invalid("sink", "give either sink (with sinkCredential) or webhook, not both")
	}
	if in.SinkCredential != nil && in.Sink == nil {
		return invalid("sinkCredential", "given without sink")
	}
	if in.Sink != nil {
		if err := s.parseSinkURL("sink", *in.Sink, sinkCode); err != nil {
			return err
		}
		p.sink = *in.Sink
	}
	if c := in.SinkCredential; c != nil {
		if c.CredentialType == nil {
			return invalid("sinkCredential.credentialType", "required")
		}
		switch *c.CredentialType {
		case "ACCESSTOKEN":
		case "PLAIN", "REFRESHTOKEN":
			return &apiError{status: http.StatusBadRequest, code: codeInvalidCredential,
				msg: fmt.Sprintf("sinkCredential.credentialType: %s is not supported, only ACCESSTOKEN", *c.CredentialType)}
		default:
			return invalid("sinkCredential.credentialType", "%q is not one of PLAIN, ACCESSTOKEN, REFRESHTOKEN", *c.CredentialType)
		}
		if c.AccessToken == nil || *c.AccessToken == "" {
			return invalid("sinkCredential.accessToken", "required")
		}
		if c.AccessTokenType == nil {
			return invalid("sinkCredential.accessTokenType", "required")
		}
		if !strings.EqualFold(*c.AccessTokenType, "bearer") {
			return &apiError{status: http.StatusBadRequest, code: codeInvalidToken,
				msg: fmt.Sprintf("sinkCredential.accessTokenType: %q is not supported, only bearer", *c.AccessTokenType)}
		}
		if c.AccessTokenExpiresUtc == nil {
			return invalid("sinkCredential.accessTokenExpiresUtc", "required")
		}
		exp, err := time.Parse(time.RFC3339, *c.AccessTokenExpiresUtc)
		if err != nil {
			return invalid("sinkCredential.accessTokenExpiresUtc", "%q is not an RFC 3339 date-time with time zone", *c.AccessTokenExpiresUtc)
		}
		p.token, p.tokenExpiry = *c.AccessToken, exp
	}
	if w := in.Webhook; w != nil {
		if w.NotificationURL == nil {
			return invalid("webhook.notificationUrl", "required")
		}
		if err := s.parseSinkURL("webhook.notificationUrl", *w.NotificationURL, sinkCode); err != nil {
			return err
		}
		p.sink, p.sinkV0 = *w.NotificationURL, true
		if t := w.NotificationAuthToken; t != nil {
			if s.cfg.Strict && (len(*t) < v0MinNotificationTokenSize || len(*t) > v0MaxNotificationTokenSize) {
				return invalid("webhook.notificationAuthToken", "must have %d to %d characters (the simulator runs with Strict)",
					v0MinNotificationTokenSize, v0MaxNotificationTokenSize)
			}
			p.token = *t
		}
	}
	return nil
}

func parseExtend(d dialect, in *extendIn) (int64, *apiError) {
	if in.RequestedAdditionalDuration == nil {
		return 0, invalid("requestedAdditionalDuration", "required")
	}
	add := *in.RequestedAdditionalDuration
	limit := int64(maxInt32)
	if d == dialectV0 {
		limit = v0MaxAdditionalDuration
	}
	if add < 1 || add > limit {
		return 0, outOfRange("requestedAdditionalDuration", "%d is outside 1 to %d seconds", add, limit)
	}
	return add, nil
}

package qodsim

import (
	"fmt"
	"net/http"
	"time"
)

// BasePathProfiles is the base path of the QoS Profiles API 1.1.0
// (qos-profiles-1.1.0.yaml), the companion of QoD 1.1.0.
const BasePathProfiles = "/qos-profiles/v1"

// qosProfile is QosProfile of QoS Profiles 1.1.0 (and of QoD 0.10.1, whose
// shape is the same for the fields the simulator knows).
type qosProfile struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Status      string        `json:"status"`
	MinDuration durationValue `json:"minDuration"`
	MaxDuration durationValue `json:"maxDuration"`
}

type durationValue struct {
	Value int64  `json:"value"`
	Unit  string `json:"unit"`
}

func renderProfile(p Profile) qosProfile {
	return qosProfile{
		Name: p.Name, Description: p.Description, Status: p.Status,
		MinDuration: durationValue{Value: int64(p.MinDuration / time.Second), Unit: "Seconds"},
		MaxDuration: durationValue{Value: int64(p.MaxDuration / time.Second), Unit: "Seconds"},
	}
}

// profilesIn is QosProfileDeviceRequest.
type profilesIn struct {
	Device *deviceIn `json:"device"`
	Name   *string   `json:"name"`
	Status *string   `json:"status"`
}

func validProfileStatus(s string) bool {
	return s == "ACTIVE" || s == "INACTIVE" || s == "DEPRECATED"
}

// handleRetrieveProfiles is retrieveQoSProfiles: the profiles that match
// name and status and are available to the device (without a device, the
// profiles not restricted to devices).
func (s *Sim) handleRetrieveProfiles(w http.ResponseWriter, r *http.Request, c *caller) *apiError {
	var in profilesIn
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	if in.Name != nil && !profileNameRE.MatchString(*in.Name) {
		return invalid("name", "%q is not 3 to 256 of [a-zA-Z0-9_.-]", *in.Name)
	}
	if in.Status != nil && !validProfileStatus(*in.Status) {
		return invalid("status", "%q is not one of ACTIVE, INACTIVE, DEPRECATED", *in.Status)
	}
	keys, err := s.subject(in.Device, c, false)
	if err != nil {
		return err
	}
	out := []qosProfile{}
	for _, n := range s.cfg.order {
		p := s.cfg.profiles[n]
		if (in.Name == nil || *in.Name == n) && (in.Status == nil || *in.Status == p.Status) && s.profileAvailable(n, keys) {
			out = append(out, renderProfile(p))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleGetProfile is getQosProfile. With a three-legged token, a profile
// is found only if it is available to the token's device.
func (s *Sim) handleGetProfile(w http.ResponseWriter, r *http.Request, c *caller) *apiError {
	name := r.PathValue("name")
	if !profileNameRE.MatchString(name) {
		return invalid("name", "%q is not 3 to 256 of [a-zA-Z0-9_.-]", name)
	}
	p, ok := s.cfg.profiles[name]
	if ok && c.threeLegged() && !s.profileAvailable(name, c.keys) {
		ok = false
	}
	if !ok {
		return &apiError{status: http.StatusNotFound, code: codeNotFound, msg: fmt.Sprintf("name: QoS profile %s does not exist", name)}
	}
	writeJSON(w, http.StatusOK, renderProfile(p))
	return nil
}

// subject returns the index keys of the device a v1 request is about: the
// body's device or the three-legged token's, never both (422
// UNNECESSARY_IDENTIFIER); none (nil, nil) when there is neither and the
// operation does not require one (else 422 MISSING_IDENTIFIER). A device
// given only by networkAccessIdentifier is 422 UNSUPPORTED_IDENTIFIER, one
// the network does not know or serve 404 / 422 (scenario devices). Every
// 400 of the device comes before any of these.
func (s *Sim) subject(in *deviceIn, c *caller, required bool) ([]string, *apiError) {
	var keys []string
	switch {
	case in != nil:
		var err *apiError
		if _, keys, err = parseDevice(dialectV1, in); err != nil {
			return nil, err
		}
		if c.threeLegged() {
			return nil, errUnnecessaryIdentifier()
		}
		if len(keys) == 0 {
			return nil, errUnsupportedIdentifier()
		}
	case c.threeLegged():
		keys = c.keys
	case required:
		return nil, errMissingIdentifier()
	default:
		return nil, nil
	}
	if err := s.deviceError(keys); err != nil {
		return nil, err
	}
	return keys, nil
}

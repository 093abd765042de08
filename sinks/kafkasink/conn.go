package kafkasink

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/qodbridge/qodbridge/sinks/internal/tlsfiles"
)

// Defaults of ConnOptions.
const (
	DefaultBroker      = "127.0.0.1:9092"
	DefaultClientID    = "qodbridge"
	DefaultDialTimeout = 5 * time.Second
)

// SASL mechanisms SASLOptions.Mechanism accepts (compared without regard to
// case).
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// ConnOptions say how to reach the Kafka cluster. The zero value connects
// to 127.0.0.1:9092 in plain text with no authentication.
type ConnOptions struct {
	// Brokers are the seed brokers, host:port each; the cluster's
	// metadata names the rest. Default ["127.0.0.1:9092"].
	Brokers []string
	// ClientID is the client id the brokers see (quotas, logs). Default
	// "qodbridge".
	ClientID string
	// TLS to the brokers; TLS.Enabled or any file turns it on.
	TLS TLSOptions
	// SASL authentication; an empty Mechanism means none.
	SASL SASLOptions
	// DialTimeout bounds establishing one connection, TLS handshake and
	// SASL included. Default 5s.
	DialTimeout time.Duration
}

// TLSOptions configure TLS to the brokers.
type TLSOptions struct {
	// Enabled turns TLS on with the system roots when no file is given.
	// Default false; setting any file implies it.
	Enabled bool
	// CAFile verifies the brokers' certificates; empty uses the system
	// roots.
	CAFile string
	// CertFile and KeyFile are a client certificate (mutual TLS); both or
	// neither.
	CertFile string
	KeyFile  string
	// InsecureSkipVerify accepts any broker certificate. For tests only.
	// Default false.
	InsecureSkipVerify bool
}

// On reports whether any setting asks for TLS.
func (t TLSOptions) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// Config returns the tls.Config t describes, or nil when TLS is off.
func (t TLSOptions) Config() (*tls.Config, error) {
	if !t.On() {
		return nil, nil
	}
	cfg, err := tlsfiles.Client(t.CAFile, t.CertFile, t.KeyFile, t.InsecureSkipVerify)
	if errors.Is(err, tlsfiles.ErrInvalid) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if err != nil {
		return nil, fmt.Errorf("kafkasink: %w", err)
	}
	return cfg, nil
}

// SASLOptions configure SASL authentication.
type SASLOptions struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty means no
	// SASL. PLAIN sends the password in the clear: use it with TLS.
	Mechanism string
	Username  string
	// Password, or PasswordFile: a file whose content (trailing newline
	// removed) is the password. At most one of them.
	Password     string
	PasswordFile string
}

// mechanism returns the kafka-go SASL mechanism s describes, or nil when
// SASL is off.
func (s SASLOptions) mechanism() (sasl.Mechanism, error) {
	if s.Mechanism == "" {
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" {
			return nil, fmt.Errorf("%w: SASL.Username/Password given without SASL.Mechanism", ErrInvalidOptions)
		}
		return nil, nil
	}
	if s.Password != "" && s.PasswordFile != "" {
		return nil, fmt.Errorf("%w: give SASL.Password or SASL.PasswordFile, not both", ErrInvalidOptions)
	}
	pass := s.Password
	if s.PasswordFile != "" {
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("kafkasink: SASL.PasswordFile: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	if s.Username == "" {
		return nil, fmt.Errorf("%w: SASL.Username is empty", ErrInvalidOptions)
	}
	switch strings.ToUpper(s.Mechanism) {
	case MechanismPlain:
		return plain.Mechanism{Username: s.Username, Password: pass}, nil
	case MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		algo := scram.SHA256
		if strings.EqualFold(s.Mechanism, MechanismSCRAMSHA512) {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.Username, pass)
		if err != nil {
			return nil, fmt.Errorf("kafkasink: SASL %s: %w", s.Mechanism, err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("%w: SASL.Mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", ErrInvalidOptions, s.Mechanism)
}

// SeedBrokers returns the seed brokers as kafka-go's reader takes them
// (the default when none is given), or an error for one that is not
// host:port.
func (co ConnOptions) SeedBrokers() ([]string, error) { return co.brokers() }

func (co ConnOptions) brokers() ([]string, error) {
	if len(co.Brokers) == 0 {
		return []string{DefaultBroker}, nil
	}
	out := make([]string, 0, len(co.Brokers))
	for _, b := range co.Brokers {
		b = strings.TrimSpace(b)
		if _, _, err := net.SplitHostPort(b); err != nil {
			return nil, fmt.Errorf("%w: Brokers: %q is not host:port", ErrInvalidOptions, b)
		}
		out = append(out, b)
	}
	return out, nil
}

func (co ConnOptions) dialTimeout() time.Duration {
	if co.DialTimeout > 0 {
		return co.DialTimeout
	}
	return DefaultDialTimeout
}

func (co ConnOptions) clientID() string {
	if co.ClientID != "" {
		return co.ClientID
	}
	return DefaultClientID
}

// Transport returns a kafka-go transport (for kafka.Writer and
// kafka.Client) dialing the brokers as co says, and the brokers' address.
// The caller owns the transport: CloseIdleConnections releases it.
func (co ConnOptions) Transport() (*kafka.Transport, net.Addr, error) {
	brokers, err := co.brokers()
	if err != nil {
		return nil, nil, err
	}
	tlsCfg, err := co.TLS.Config()
	if err != nil {
		return nil, nil, err
	}
	mech, err := co.SASL.mechanism()
	if err != nil {
		return nil, nil, err
	}
	t := &kafka.Transport{
		DialTimeout: co.dialTimeout(),
		ClientID:    co.clientID(),
		TLS:         tlsCfg,
		SASL:        mech,
	}
	return t, kafka.TCP(brokers...), nil
}

// Dialer returns a kafka-go dialer (for kafka.Reader and kafka.Conn)
// configured like Transport.
func (co ConnOptions) Dialer() (*kafka.Dialer, error) {
	if _, err := co.brokers(); err != nil {
		return nil, err
	}
	tlsCfg, err := co.TLS.Config()
	if err != nil {
		return nil, err
	}
	mech, err := co.SASL.mechanism()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{
		ClientID:      co.clientID(),
		Timeout:       co.dialTimeout(),
		DualStack:     true,
		TLS:           tlsCfg,
		SASLMechanism: mech,
	}, nil
}

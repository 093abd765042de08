package config

import "testing"

func TestZeroConfigDefaults(t *testing.T) {
	c, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Address != DefaultHTTPAddress || c.Admin.Address != DefaultAdminAddress ||
		c.NATS.Embedded.Address != DefaultNATSAddress || c.NATS.Embedded.DataDir != DefaultDataDir {
		t.Errorf("addresses = %s %s %s %s", c.HTTP.Address, c.Admin.Address, c.NATS.Embedded.Address, c.NATS.Embedded.DataDir)
	}
	if !c.NATSEmbedded() || c.NATSOff() {
		t.Error("zero config must run embedded NATS")
	}
	if c.GeneratedToken == "" || len(c.Auth.Tokens) != 1 || c.Auth.Tokens[0] != c.GeneratedToken {
		t.Errorf("zero config must generate one token, got %v", c.Auth.Tokens)
	}
	if c.HTTP.PublicURL != "http://127.0.0.1:8080" {
		t.Errorf("public url %q", c.HTTP.PublicURL)
	}
	// The packages that take these apply their defaults (process.Effective
	// shows them, and its tests check them).
	if c.Ingress.PublishTimeout != 0 || c.HTTP.MaxBodyBytes != 0 || c.NATS.SubjectPrefix != "" || c.Kafka.Topic != "" {
		t.Errorf("config wrote a package's default: publish timeout %v, max body %d, prefix %q, topic %q",
			c.Ingress.PublishTimeout, c.HTTP.MaxBodyBytes, c.NATS.SubjectPrefix, c.Kafka.Topic)
	}
	if c.Sim.Address != DefaultSimAddress || c.Log.Format != DefaultLogFormat || c.Log.Level != DefaultLogLevel ||
		c.ShutdownTimeout.D() != DefaultShutdownTimeout {
		t.Errorf("sim %s, log %s %s, shutdown %s", c.Sim.Address, c.Log.Format, c.Log.Level, c.ShutdownTimeout)
	}
	if !c.Admin.UIOn() {
		t.Error("the console must be on by default")
	}
	if c, err := Load("", env(map[string]string{"QODBRIDGE_ADMIN_UI": "false"})); err != nil || c.Admin.UIOn() {
		t.Errorf("QODBRIDGE_ADMIN_UI=false: on %v, %v", c != nil && c.Admin.UIOn(), err)
	}
}

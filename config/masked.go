package config

// Masked returns a copy of c with every secret replaced by "***", for
// printing.
func (c *Config) Masked() Config {
	m := *c
	mask := func(in []string) []string {
		out := make([]string, len(in))
		for i := range in {
			out[i] = "***"
		}
		return out
	}
	m.Auth.Tokens = mask(c.Auth.Tokens)
	m.Admin.Tokens = mask(c.Admin.Tokens)
	m.Auth.SessionSecrets = mask(c.Auth.SessionSecrets)
	if m.NATS.Token != "" {
		m.NATS.Token = "***"
	}
	for _, p := range []*string{&m.NATS.Password, &m.NATS.Embedded.Password, &m.Kafka.SASL.Password, &m.QoD.Token, &m.QoD.OAuth2.ClientSecret} {
		if *p != "" {
			*p = "***"
		}
	}
	if len(c.QoD.APIKeyHeaders) > 0 {
		m.QoD.APIKeyHeaders = map[string]string{}
		for k := range c.QoD.APIKeyHeaders {
			m.QoD.APIKeyHeaders[k] = "***"
		}
	}
	// URLs keep their host but not their user info.
	m.NATS.URL = RedactURL(c.NATS.URL)
	m.QoD.APIURL = RedactURL(c.QoD.APIURL)
	m.QoD.OAuth2.TokenURL = RedactURL(c.QoD.OAuth2.TokenURL)
	m.HTTP.PublicURL = RedactURL(c.HTTP.PublicURL)
	m.GeneratedToken = ""
	return m
}

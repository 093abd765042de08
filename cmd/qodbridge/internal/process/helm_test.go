package process

// Checks of the Helm chart in deploy/helm/qodbridge, without a cluster or
// the helm binary: the chart is loaded and rendered by Helm's own Go
// packages (what `helm template` and `helm install` run), linted by Helm's
// linter, and every object is decoded strictly into its Kubernetes API type
// and put through the same checks as the Kustomize overlays (checkBridge).
// The chart is then compared with the Kustomize base and the prod overlay
// field by field, so that the two cannot drift apart unnoticed.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	sigsyaml "sigs.k8s.io/yaml"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"

	"github.com/qodbridge/qodbridge/config"
)

var chartDir = filepath.Join(deployDir, "helm/qodbridge")

// prodValues is the production example beside the chart.
var prodValues = filepath.Join(chartDir, "values-prod.yaml")

// helmValues merges the values files and then the YAML documents in extra,
// later ones winning, as `helm install -f a.yaml -f b.yaml` does.
func helmValues(t *testing.T, files []string, extra ...string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		extra = append([]string{string(b)}, extra...)
	}
	for _, doc := range extra {
		m, err := loader.LoadValues(strings.NewReader(doc))
		if err != nil {
			t.Fatalf("values %q: %v", doc, err)
		}
		vals = loader.MergeMaps(vals, m)
	}
	return vals
}

// renderHelm renders the chart as release name in namespace ns with vals,
// as `helm template` does (lookup finds nothing), and returns the rendered
// manifests by template, NOTES.txt left out.
func renderHelm(name, ns string, vals map[string]any) (map[string]string, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	caps := common.DefaultCapabilities.Copy()
	top, err := chartutil.ToRenderValues(ch, vals, common.ReleaseOptions{Name: name, Namespace: ns, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	out, err := engine.Engine{Strict: true}.RenderWithContext(context.Background(), ch, top)
	if err != nil {
		return nil, err
	}
	for k := range out {
		if strings.HasSuffix(k, "NOTES.txt") {
			delete(out, k)
		}
	}
	return out, nil
}

// helmRelease renders the chart and decodes every object strictly into its
// API type.
func helmRelease(t *testing.T, name, ns string, vals map[string]any) *rendered {
	t.Helper()
	out, err := renderHelm(name, ns, vals)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	r := newRendered()
	for tpl, manifest := range out {
		for _, doc := range releaseutil.SplitManifests(manifest) {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if err := sigsyaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s: %v", tpl, err)
			}
			if head.Kind == "" {
				continue // comments only
			}
			if head.Metadata.Namespace != ns {
				t.Errorf("%s: %s %s in namespace %q, not the release's %q", tpl, head.Kind, head.Metadata.Name, head.Metadata.Namespace, ns)
			}
			r.add(t, tpl, head.APIVersion, head.Kind, head.Metadata.Name, []byte(doc))
		}
	}
	return r
}

// valuesDocument reports whether the prod values file shows `kubectl create
// secret <what>`.
func valuesDocument(t *testing.T) func(string) bool {
	b, err := os.ReadFile(prodValues)
	if err != nil {
		t.Fatal(err)
	}
	return func(what string) bool { return bytes.Contains(b, []byte("create secret "+what)) }
}

func bridgeContainer(t *testing.T, r *rendered, name string) *corev1.Container {
	t.Helper()
	d := r.deployments[name]
	if d == nil {
		t.Fatalf("no Deployment %s", name)
	}
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == "qodbridge" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container qodbridge", name)
	return nil
}

func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// goMemLimitBytes parses GOMEMLIMIT as the Go runtime does (a number with
// an optional B, KiB, MiB, GiB or TiB).
func goMemLimitBytes(t *testing.T, v string) int64 {
	t.Helper()
	mult := int64(1)
	for i, suffix := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			v, mult = n, int64(1)<<(10*(i+1))
			break
		}
	}
	v = strings.TrimSuffix(v, "B")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("GOMEMLIMIT %q: %v", v, err)
	}
	return n * mult
}

// TestHelmLint runs Helm's linter (`helm lint`) on the chart with the
// default and the prod values: no warning, no error.
func TestHelmLint(t *testing.T) {
	for name, files := range map[string][]string{"default": nil, "prod": {prodValues}} {
		t.Run(name, func(t *testing.T) {
			res := lint.RunAll(chartDir, helmValues(t, files), "qodbridge")
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Error(m.Error())
				} else {
					t.Log(m.Error())
				}
			}
		})
	}
}

// TestHelmChart renders the chart with the default values and with the
// prod example, and checks both as the Kustomize overlays are checked, then
// what is the chart's own: the Secret made or referenced, the optional
// ServiceMonitor, GOMEMLIMIT from the memory limit.
func TestHelmChart(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		r := helmRelease(t, "qodbridge", "qodbridge", helmValues(t, nil))
		dep := checkBridge(t, r, bridgeSource{deployment: "qodbridge", documented: func(string) bool { return false }})
		c := bridgeContainer(t, r, dep.Name)
		if len(r.monitors) != 0 {
			t.Error("a ServiceMonitor by default: it needs the Prometheus Operator's CRD")
		}
		// The chart makes the Secret: generated tokens and session secrets
		// (checkBridge loaded the config with them: long enough).
		s := r.secrets["qodbridge"]
		if s == nil {
			t.Fatal("no Secret qodbridge by default")
		}
		for _, k := range []string{"auth-tokens", "session-secrets"} {
			if len(s.Data[k]) < 32 {
				t.Errorf("Secret key %s: %q: want a generated secret", k, s.Data[k])
			}
		}
		if _, ok := s.Data["admin-tokens"]; ok {
			t.Error("admin-tokens in the Secret although secret.adminTokens is empty")
		}
		for _, cm := range r.configMaps {
			for k, v := range cm.Data {
				for _, sv := range s.Data {
					if strings.Contains(v, string(sv)) {
						t.Errorf("ConfigMap %s key %s holds a value of the Secret", cm.Name, k)
					}
				}
			}
		}
		checkGoMemLimit(t, c)
		if dep.Spec.Replicas != nil {
			t.Errorf("replicas %d beside the HPA: an upgrade would reset the HPA's count", *dep.Spec.Replicas)
		}
		if p := c.StartupProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.StrVal != "admin" {
			t.Errorf("startup probe %+v: want GET /healthz on the admin port", p)
		}
	})

	t.Run("prod", func(t *testing.T) {
		r := helmRelease(t, "qodbridge", "qodbridge", helmValues(t, []string{prodValues}))
		dep := checkBridge(t, r, bridgeSource{deployment: "qodbridge", prod: true, documented: valuesDocument(t)})
		c := bridgeContainer(t, r, dep.Name)
		if len(r.secrets) != 0 {
			t.Errorf("the chart made %d Secrets although secret.existingSecret is set", len(r.secrets))
		}
		for _, e := range c.Env {
			if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil && ref.SecretKeyRef.Name != "qodbridge" {
				t.Errorf("env %s reads Secret %s, not the existing qodbridge", e.Name, ref.SecretKeyRef.Name)
			}
		}
		if len(r.monitors) != 1 || r.monitors[0].Labels["release"] != "kube-prometheus-stack" {
			t.Errorf("want one ServiceMonitor labelled release: kube-prometheus-stack, got %d", len(r.monitors))
		}
		hpa := r.hpas[0]
		if *hpa.Spec.MinReplicas != 3 || r.pdbs[0].Spec.MinAvailable.IntValue() != 2 {
			t.Errorf("HPA min %d, PDB minAvailable %s: want 3 and 2", *hpa.Spec.MinReplicas, r.pdbs[0].Spec.MinAvailable.String())
		}
		cfg := loadHelmConfig(t, r, "qodbridge")
		if n := len(config.SplitList(cfg.NATS.URL)); n != 3 || cfg.NATS.Stream.Replicas != 3 {
			t.Errorf("NATS: %d URLs, stream replicas %d: want the 3-server cluster and replicas 3", n, cfg.NATS.Stream.Replicas)
		}
		if !strings.HasPrefix(cfg.HTTP.PublicURL, "https://") {
			t.Errorf("public_url %q: CAMARA 1.x demands https", cfg.HTTP.PublicURL)
		}
		checkGoMemLimit(t, c)
	})
}

// checkGoMemLimit: GOMEMLIMIT lies below the container's memory limit, at
// 25/32 of it, as the Kustomize base and overlays set it by hand.
func checkGoMemLimit(t *testing.T, c *corev1.Container) {
	t.Helper()
	e := envVar(c, "GOMEMLIMIT")
	if e == nil {
		t.Fatal("no GOMEMLIMIT")
	}
	limit := c.Resources.Limits.Memory().Value()
	if got, want := goMemLimitBytes(t, e.Value), limit*25/32; got != want {
		t.Errorf("GOMEMLIMIT %s = %d bytes: want 25/32 of the %d-byte memory limit, %d", e.Value, got, limit, want)
	}
}

// loadHelmConfig loads the ConfigMap's config file of the release's
// Deployment with example credentials, as the bridge would.
func loadHelmConfig(t *testing.T, r *rendered, deployment string) *config.Config {
	t.Helper()
	d := r.deployments[deployment]
	c := bridgeContainer(t, r, deployment)
	path := envVar(c, "QODBRIDGE_CONFIG")
	if path == nil {
		t.Fatal("no QODBRIDGE_CONFIG")
	}
	vol, key := mountFor(t, d.Spec.Template.Spec, *c, path.Value)
	cm := r.configMaps[vol.ConfigMap.Name]
	if cm == nil {
		t.Fatalf("ConfigMap %s is not rendered", vol.ConfigMap.Name)
	}
	return loadConfigText(t, cm.Data[key])
}

func loadConfigText(t *testing.T, text string) *config.Config {
	t.Helper()
	f := filepath.Join(t.TempDir(), "qodbridge.yaml")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"QODBRIDGE_AUTH_TOKENS":     "example-token-0123456789",
		"QODBRIDGE_SESSION_SECRETS": "example-session-secret-0123456789",
	}
	cfg, err := config.Load(f, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config:\n%s\n%v", text, err)
	}
	return cfg
}

// TestHelmValues: what the chart's values switch on and off, and the
// combinations it refuses at install instead of leaving a pod to crash.
func TestHelmValues(t *testing.T) {
	render := func(t *testing.T, name string, extra ...string) *rendered {
		t.Helper()
		return helmRelease(t, name, "ns1", helmValues(t, nil, extra...))
	}

	t.Run("release name", func(t *testing.T) {
		r := render(t, "demo")
		checkBridge(t, r, bridgeSource{deployment: "demo-qodbridge", documented: func(string) bool { return false }})
		if cfg := loadHelmConfig(t, r, "demo-qodbridge"); cfg.HTTP.PublicURL != "http://demo-qodbridge:8080" {
			t.Errorf("default public_url %q: want the release's Service", cfg.HTTP.PublicURL)
		}
	})

	t.Run("serviceMonitor", func(t *testing.T) {
		r := render(t, "qodbridge", "serviceMonitor: {enabled: true, interval: 15s}")
		checkBridge(t, r, bridgeSource{deployment: "qodbridge", documented: func(string) bool { return false }})
		if len(r.monitors) != 1 || r.monitors[0].Spec.Endpoints[0].Interval != "15s" {
			t.Errorf("serviceMonitor.enabled: want one ServiceMonitor scraping every 15s")
		}
	})

	t.Run("existingSecret", func(t *testing.T) {
		r := render(t, "qodbridge", "secret: {existingSecret: mine}")
		if len(r.secrets) != 0 {
			t.Error("the chart made a Secret although secret.existingSecret is set")
		}
		refs := secretRefs(bridgeContainer(t, r, "qodbridge"))
		if !slices.Equal(refs, []string{"mine", ""}) {
			t.Errorf("env reads Secrets %q, want only mine", refs)
		}
	})

	t.Run("secret from values", func(t *testing.T) {
		r := render(t, "qodbridge", `secret:
  authTokens: [sender-token-0123456789, sender-token-9876543210]
  sessionSecrets: [session-secret-0123456789]
  adminTokens: [admin-token-0123456789]
  qodApiToken: qod-token`)
		s := r.secrets["qodbridge"]
		want := map[string]string{
			"auth-tokens":     "sender-token-0123456789,sender-token-9876543210",
			"session-secrets": "session-secret-0123456789",
			"admin-tokens":    "admin-token-0123456789",
			"qod-api-token":   "qod-token",
		}
		got := map[string]string{}
		for k, v := range s.Data {
			got[k] = string(v)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Secret data %v, want %v", got, want)
		}
		c := bridgeContainer(t, r, "qodbridge")
		for key, env := range map[string]string{"auth-tokens": "QODBRIDGE_AUTH_TOKENS", "session-secrets": "QODBRIDGE_SESSION_SECRETS",
			"admin-tokens": "QODBRIDGE_ADMIN_TOKENS", "qod-api-token": "QODBRIDGE_QOD_API_TOKEN"} {
			e := envVar(c, env)
			if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Key != key {
				t.Errorf("%s does not read key %s of the Secret", env, key)
			}
		}
	})

	t.Run("no autoscaling", func(t *testing.T) {
		r := render(t, "qodbridge", "autoscaling: {enabled: false}\nreplicaCount: 3\npodDisruptionBudget: {minAvailable: 2}")
		if len(r.hpas) != 0 {
			t.Error("an HPA although autoscaling.enabled is false")
		}
		if d := r.deployments["qodbridge"]; d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
			t.Error("want replicas 3 from replicaCount")
		}
	})

	t.Run("memory", func(t *testing.T) {
		for extra, want := range map[string]string{
			"resources: {limits: {memory: 1Gi}}":                     "800MiB",
			"resources: {limits: {memory: 300M}}":                    "234375000",
			"resources: {limits: {memory: 1Gi}}\ngoMemLimit: 900MiB": "900MiB",
		} {
			c := bridgeContainer(t, render(t, "qodbridge", extra), "qodbridge")
			if e := envVar(c, "GOMEMLIMIT"); e == nil || e.Value != want {
				t.Errorf("%s: GOMEMLIMIT %v, want %s", extra, e, want)
			}
		}
		c := bridgeContainer(t, render(t, "qodbridge", "resources: {limits: null}"), "qodbridge")
		if e := envVar(c, "GOMEMLIMIT"); e != nil {
			t.Errorf("GOMEMLIMIT %s without a memory limit", e.Value)
		}
	})

	t.Run("tls", func(t *testing.T) {
		r := render(t, "qodbridge", "tls: {secretName: my-tls}\nservice: {port: 443}")
		checkBridge(t, r, bridgeSource{deployment: "qodbridge", documented: func(what string) bool { return what == "tls my-tls" }})
		cfg := loadHelmConfig(t, r, "qodbridge")
		if cfg.HTTP.TLS.CertFile != "/etc/qodbridge/tls/tls.crt" || cfg.HTTP.PublicURL != "https://qodbridge:443" {
			t.Errorf("tls: cert %q, public_url %q", cfg.HTTP.TLS.CertFile, cfg.HTTP.PublicURL)
		}
		if p := r.services["qodbridge"].Spec.Ports[0]; p.Name != "https" || p.Port != 443 {
			t.Errorf("ingress Service port %s/%d: want https/443", p.Name, p.Port)
		}
	})

	t.Run("config passes through", func(t *testing.T) {
		// A large integer stays an integer (no 1.048576e+06), every key
		// reaches the file.
		pw := filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(pw, []byte("kafka-password"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := render(t, "qodbridge", fmt.Sprintf("config: {http: {max_body_bytes: 2097152}, kafka: {brokers: [k:9092], sasl: {mechanism: PLAIN, username: u, password_file: %q}}}", pw))
		cfg := loadHelmConfig(t, r, "qodbridge")
		if cfg.HTTP.MaxBodyBytes != 2097152 || cfg.Kafka.SASL.Password != "kafka-password" || cfg.NATS.URL != "nats://nats:4222" {
			t.Errorf("config: max_body_bytes %d, sasl password %q, nats.url %q", cfg.HTTP.MaxBodyBytes, cfg.Kafka.SASL.Password, cfg.NATS.URL)
		}
	})

	for name, tc := range map[string]struct{ values, wantErr string }{
		"secret in config":          {"config: {kafka: {sasl: {password: hunter2hunter2}}}", "config.kafka.sasl.password is a secret"},
		"tokens in config":          {"config: {auth: {tokens: [a-token-0123456789abc]}}", "config.auth.tokens is a secret"},
		"listener in config":        {"config: {http: {address: '127.0.0.1:8080'}}", "config.http.address"},
		"PDB blocks evictions":      {"podDisruptionBudget: {minAvailable: 2}", "blocks every eviction"},
		"short token":               {"secret: {authTokens: [short]}", "16+ characters"},
		"existingSecret and values": {"secret: {existingSecret: mine, authTokens: [sender-token-0123456789]}", "existingSecret is set"},
		"odd memory limit":          {"resources: {limits: {memory: 0.5Gi}}", "set goMemLimit"},
		// values.schema.json: a misspelt value fails instead of being ignored.
		"misspelt value":              {"serviceMonitr: {enabled: true}", "serviceMonitr"},
		"misspelt nested value":       {"serviceMonitor: {enable: true}", "enable"},
		"Kubernetes-style GOMEMLIMIT": {"goMemLimit: 200Mi", "goMemLimit"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := renderHelm("qodbridge", "ns1", helmValues(t, nil, tc.values))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", tc.values, err, tc.wantErr)
			}
		})
	}
}

// TestHelmMatchesKustomize: the chart's defaults render what the Kustomize
// base does, and values-prod.yaml what the prod overlay does, in every
// field that matters to a running bridge. Names and labels differ by
// design (Helm adds app.kubernetes.io/instance and the like).
func TestHelmMatchesKustomize(t *testing.T) {
	for _, tc := range []struct {
		name, overlay string
		files         []string
		// mask clears config fields the two set differently on purpose.
		mask func(*config.Config)
	}{
		{name: "default/base", overlay: "base"},
		{name: "prod", overlay: "overlays/prod", files: []string{prodValues}, mask: func(c *config.Config) {
			// The overlay names the NATS cluster's Service, the chart's
			// example its three servers (deploy/k8s/nats-values.yaml).
			c.NATS.URL = ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := render(t, filepath.Join(deployDir, "k8s", tc.overlay))
			h := helmRelease(t, "qodbridge", "qodbridge", helmValues(t, tc.files))
			same := func(what string, a, b any) {
				t.Helper()
				if !equality.Semantic.DeepEqual(a, b) {
					ja, _ := json.Marshal(a)
					jb, _ := json.Marshal(b)
					t.Errorf("%s differs:\nkustomize %s\nhelm      %s", what, ja, jb)
				}
			}

			kd, hd := k.deployments["qodbridge"], h.deployments["qodbridge"]
			kc, hc := bridgeContainer(t, k, "qodbridge"), bridgeContainer(t, h, "qodbridge")
			ki, hi := kc.Image, hc.Image
			if tc.overlay == "base" { // the base's tag is latest, the chart's its appVersion
				ki, hi = strings.Split(ki, ":")[0], strings.Split(hi, ":")[0]
			}
			same("image", ki, hi)
			same("args", kc.Args, hc.Args)
			same("ports", kc.Ports, hc.Ports)
			same("startup probe", kc.StartupProbe, hc.StartupProbe)
			same("liveness probe", kc.LivenessProbe, hc.LivenessProbe)
			same("readiness probe", kc.ReadinessProbe, hc.ReadinessProbe)
			same("lifecycle", kc.Lifecycle, hc.Lifecycle)
			same("resources", kc.Resources, hc.Resources)
			same("container securityContext", kc.SecurityContext, hc.SecurityContext)
			same("pod securityContext", kd.Spec.Template.Spec.SecurityContext, hd.Spec.Template.Spec.SecurityContext)
			same("terminationGracePeriodSeconds", kd.Spec.Template.Spec.TerminationGracePeriodSeconds, hd.Spec.Template.Spec.TerminationGracePeriodSeconds)
			same("automountServiceAccountToken", kd.Spec.Template.Spec.AutomountServiceAccountToken, hd.Spec.Template.Spec.AutomountServiceAccountToken)
			same("strategy", kd.Spec.Strategy, hd.Spec.Strategy)
			byName := func(ms []corev1.VolumeMount) map[string]corev1.VolumeMount {
				out := map[string]corev1.VolumeMount{}
				for _, m := range ms {
					out[m.Name] = m
				}
				return out
			}
			same("volumeMounts", byName(kc.VolumeMounts), byName(hc.VolumeMounts))

			// The environment: the same variables, from the same Secret keys
			// with the same optionality (Secret names may differ).
			envShape := func(c *corev1.Container) []string {
				var out []string
				for _, e := range c.Env {
					s := e.Name + "=" + e.Value
					if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
						s = fmt.Sprintf("%s<-secret:%s optional=%v", e.Name, ref.SecretKeyRef.Key, ref.SecretKeyRef.Optional != nil && *ref.SecretKeyRef.Optional)
					}
					out = append(out, s)
				}
				slices.Sort(out)
				return out
			}
			same("env", envShape(kc), envShape(hc))

			// Volumes by name, but for the ConfigMap's generated name.
			vols := func(d []corev1.Volume) map[string]corev1.Volume {
				out := map[string]corev1.Volume{}
				for _, v := range d {
					if v.ConfigMap != nil {
						v.ConfigMap = &corev1.ConfigMapVolumeSource{Items: v.ConfigMap.Items}
					}
					out[v.Name] = v
				}
				return out
			}
			same("volumes", vols(kd.Spec.Template.Spec.Volumes), vols(hd.Spec.Template.Spec.Volumes))

			// The configuration the bridge ends up with.
			kcfg := loadConfigText(t, k.configMaps[configMapOf(t, kd)].Data["qodbridge.yaml"])
			hcfg := loadHelmConfig(t, h, "qodbridge")
			if tc.mask != nil {
				tc.mask(kcfg)
				tc.mask(hcfg)
			}
			// Compared as the settings (exported fields), not where each
			// came from: the two are loaded from different files.
			if ky, hy := mustYAML(t, kcfg), mustYAML(t, hcfg); ky != hy {
				t.Errorf("the bridge's effective config differs:\nkustomize:\n%s\nhelm:\n%s", ky, hy)
			}

			// Services: type and ports, by component.
			svcs := func(r *rendered) map[string]any {
				out := map[string]any{}
				for _, s := range r.services {
					out[s.Labels["app.kubernetes.io/component"]] = []any{s.Spec.Type, s.Spec.Ports}
				}
				return out
			}
			same("Services", svcs(k), svcs(h))

			if len(k.pdbs) != 1 || len(h.pdbs) != 1 || len(k.hpas) != 1 || len(h.hpas) != 1 || len(k.netpols) != 1 || len(h.netpols) != 1 {
				t.Fatal("want one PodDisruptionBudget, HorizontalPodAutoscaler and NetworkPolicy in both")
			}
			same("PDB minAvailable", k.pdbs[0].Spec.MinAvailable, h.pdbs[0].Spec.MinAvailable)
			kh, hh := k.hpas[0].Spec, h.hpas[0].Spec
			same("HPA bounds", []any{kh.MinReplicas, kh.MaxReplicas}, []any{hh.MinReplicas, hh.MaxReplicas})
			same("HPA metrics", kh.Metrics, hh.Metrics)
			same("HPA behavior", kh.Behavior, hh.Behavior)
			same("HPA target", kh.ScaleTargetRef, hh.ScaleTargetRef)
			same("NetworkPolicy types", k.netpols[0].Spec.PolicyTypes, h.netpols[0].Spec.PolicyTypes)
			same("NetworkPolicy ingress", k.netpols[0].Spec.Ingress, h.netpols[0].Spec.Ingress)
			same("NetworkPolicy egress", k.netpols[0].Spec.Egress, h.netpols[0].Spec.Egress)

			// The ServiceMonitor: absent from the base and the chart's
			// defaults, the same endpoints in prod.
			if len(k.monitors) != len(h.monitors) {
				t.Fatalf("%d ServiceMonitors from Kustomize, %d from Helm", len(k.monitors), len(h.monitors))
			}
			for i := range k.monitors {
				same("ServiceMonitor endpoints", k.monitors[i].Spec.Endpoints, h.monitors[i].Spec.Endpoints)
			}
		})
	}
}

// configMapOf names the ConfigMap mounted as the Deployment's config
// volume (Kustomize adds a content hash to the name).
func configMapOf(t *testing.T, d *appsv1.Deployment) string {
	t.Helper()
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "config" && v.ConfigMap != nil {
			return v.ConfigMap.Name
		}
	}
	t.Fatalf("Deployment %s mounts no ConfigMap as volume config", d.Name)
	return ""
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := sigsyaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

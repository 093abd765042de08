package process

// Checks of deploy/: what can be checked without Docker or a cluster. The
// compose file is parsed and its bridge configuration loaded as the bridge
// would load it; the Kustomize overlays are rendered with the kustomize
// library (what `kubectl apply -k` runs) and every object is decoded
// strictly into its Kubernetes API type, then cross-checked (selectors,
// ports, probes, secrets, grace period against shutdown_timeout); the
// Grafana dashboard's queries are checked against the metrics this package
// registers.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/qodbridge/qodbridge/config"
)

// deployDir is deploy/ seen from this package's directory (go test runs in
// it).
const deployDir = "../../../../deploy"

// composeService is the subset of the Compose specification the compose
// file uses. Decoding is strict: a misspelt key fails the test (a real
// Compose key the file starts using belongs here).
type composeService struct {
	Image       string            `yaml:"image"`
	Build       *composeBuild     `yaml:"build"`
	Command     []string          `yaml:"command"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
	Restart         string   `yaml:"restart"`
	StopGracePeriod string   `yaml:"stop_grace_period"`
	ReadOnly        bool     `yaml:"read_only"`
	CapDrop         []string `yaml:"cap_drop"`
	SecurityOpt     []string `yaml:"security_opt"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func loadCompose(t *testing.T) map[string]composeService {
	t.Helper()
	return loadComposeFile(t, "compose.yaml")
}

func loadComposeFile(t *testing.T, name string) map[string]composeService {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(b, &top); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for k := range top {
		if !strings.HasPrefix(k, "x-") && !slices.Contains([]string{"name", "services", "volumes", "networks"}, k) {
			t.Errorf("%s: unknown top-level key %q", name, k)
		}
	}
	// Decode the services strictly, with merge keys (<<: *anchor) resolved
	// by re-encoding the node tree first.
	node := top["services"]
	var generic map[string]any
	if err := node.Decode(&generic); err != nil {
		t.Fatalf("%s services: %v", name, err)
	}
	flat, err := yaml.Marshal(generic)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(flat))
	dec.KnownFields(true)
	var services map[string]composeService
	if err := dec.Decode(&services); err != nil {
		t.Fatalf("%s services: %v", name, err)
	}
	return services
}

// TestDeployComposeCluster: the cluster compose file runs three routed
// JetStream servers, and its bridges' configuration, loaded with their
// environment, names every server and puts every stream on all three.
func TestDeployComposeCluster(t *testing.T) {
	services := loadComposeFile(t, "compose-cluster.yaml")
	for i := 1; i <= 3; i++ {
		s, ok := services[fmt.Sprintf("nats-%d", i)]
		if !ok || !slices.Contains(s.Command, "-js") || !slices.Contains(s.Command, "--routes") {
			t.Fatalf("nats-%d: %+v: want a JetStream server routed to the others", i, s.Command)
		}
	}
	if sim := services["sim"]; sim.Environment["QODBRIDGE_SIM_TOKENS"] == "" || !slices.Contains(sim.Command, "-allow-sink") {
		t.Errorf("sim off loopback without a token or an allowed sink: %+v", sim)
	}
	for _, name := range []string{"qodbridge-1", "qodbridge-2"} {
		br, ok := services[name]
		if !ok {
			t.Fatalf("no %s service", name)
		}
		env := map[string]string{}
		for k, v := range br.Environment {
			env[k] = interpolate(t, v)
		}
		cfgPath := ""
		for _, v := range br.Volumes {
			if parts := strings.Split(v, ":"); len(parts) >= 2 && parts[1] == env["QODBRIDGE_CONFIG"] {
				cfgPath = filepath.Join(deployDir, parts[0])
			}
		}
		delete(env, "QODBRIDGE_CONFIG")
		cfg, err := config.Load(cfgPath, func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := len(config.SplitList(cfg.NATS.URL)); n != 3 || cfg.NATS.Stream.Replicas != 3 {
			t.Errorf("%s: %d NATS URLs, replicas %d: want every server and replicas 3", name, n, cfg.NATS.Stream.Replicas)
		}
	}
}

// interpolate expands ${VAR:-default} and ${VAR} as Compose does, with an
// empty environment, so the test sees the committed defaults.
func interpolate(t *testing.T, s string) string {
	t.Helper()
	re := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}`)
	return re.ReplaceAllStringFunc(s, func(m string) string {
		sub := re.FindStringSubmatch(m)
		if sub[2] == "" {
			t.Errorf("compose.yaml: %s has no default: `docker compose up` needs it set", m)
		}
		return sub[3]
	})
}

func TestDeployCompose(t *testing.T) {
	services := loadCompose(t)
	for _, name := range []string{"nats", "kafka", "sim", "qodbridge"} {
		if _, ok := services[name]; !ok {
			t.Fatalf("compose.yaml: no %q service", name)
		}
	}
	if img := services["nats"].Image; !strings.HasPrefix(img, "nats:2.11") {
		t.Errorf("nats image %q: want the official nats:2.11", img)
	}
	if !slices.Contains(services["nats"].Command, "-js") {
		t.Errorf("nats command %q does not enable JetStream (-js)", services["nats"].Command)
	}
	kafka := services["kafka"]
	if kafka.Image != "apache/kafka:3.9.0" {
		t.Errorf("kafka image %q: want the official apache/kafka:3.9.0", kafka.Image)
	}
	if roles := kafka.Environment["KAFKA_PROCESS_ROLES"]; !strings.Contains(roles, "controller") || !strings.Contains(roles, "broker") {
		t.Errorf("kafka KAFKA_PROCESS_ROLES %q: want broker,controller (KRaft, no ZooKeeper)", roles)
	}
	for k := range kafka.Environment {
		if strings.Contains(k, "ZOOKEEPER") {
			t.Errorf("kafka: %s: KRaft needs no ZooKeeper", k)
		}
	}
	// CLUSTER_ID is 16 bytes, base64url without padding.
	if id := kafka.Environment["CLUSTER_ID"]; len(id) != 22 {
		t.Errorf("kafka CLUSTER_ID %q: want 22 base64url characters (kafka-storage.sh random-uuid)", id)
	}

	for _, name := range []string{"sim", "qodbridge"} {
		s := services[name]
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s: want build with dockerfile deploy/Dockerfile", name)
			continue
		}
		if _, err := os.Stat(filepath.Join(deployDir, s.Build.Context, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s: build context %q + %q: %v", name, s.Build.Context, s.Build.Dockerfile, err)
		}
	}

	br := services["qodbridge"]
	env := map[string]string{}
	// QODBRIDGE_CONFIG is read by serve (the -config default), the rest by
	// config.Load.
	known := append(config.EnvNames(), "QODBRIDGE_CONFIG")
	for k, v := range br.Environment {
		if strings.HasPrefix(k, "QODBRIDGE_") && !slices.Contains(known, k) {
			t.Errorf("qodbridge environment: %s is not a variable the bridge reads (config.EnvNames)", k)
		}
		env[k] = interpolate(t, v)
	}
	// QODBRIDGE_CONFIG names a path in the container: find the file it is
	// mounted from, and load it with the compose environment, as the bridge
	// will.
	cfgPath := env["QODBRIDGE_CONFIG"]
	hostPath := ""
	for _, v := range br.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == cfgPath {
			hostPath = filepath.Join(deployDir, parts[0])
		}
	}
	if hostPath == "" {
		t.Fatalf("qodbridge: QODBRIDGE_CONFIG %q is not mounted from a file", cfgPath)
	}
	delete(env, "QODBRIDGE_CONFIG")
	cfg, err := config.Load(hostPath, func(k string) string { return env[k] })
	if err == nil {
		err = Check(cfg)
	}
	if err != nil {
		t.Fatalf("qodbridge: the bridge would not start with %s and the compose environment: %v", hostPath, err)
	}
	if config.IsLoopback(cfg.HTTP.Address) || config.IsLoopback(cfg.Admin.Address) {
		t.Errorf("qodbridge listens on %s / %s: loopback is unreachable from outside the container", cfg.HTTP.Address, cfg.Admin.Address)
	}
	if cfg.GeneratedToken != "" || cfg.Auth.SessionSecretsGenerated {
		t.Errorf("qodbridge: tokens and session secrets must be configured, not generated")
	}
	if !cfg.Kafka.CreateTopics {
		t.Errorf("qodbridge: kafka.create_topics is off, but the demo broker starts empty")
	}
	// Every endpoint names a service of this file, on a port it serves.
	if u, err := url.Parse(cfg.NATS.URL); err != nil || u.Hostname() != "nats" || u.Port() != "4222" {
		t.Errorf("qodbridge NATS URL %q: want nats://nats:4222", cfg.NATS.URL)
	}
	for _, b := range cfg.Kafka.Brokers {
		host, port, _ := net.SplitHostPort(b)
		if host != "kafka" || !strings.Contains(kafka.Environment["KAFKA_ADVERTISED_LISTENERS"], "//kafka:"+port) {
			t.Errorf("qodbridge Kafka broker %q is not a listener the kafka service advertises (%s)", b, kafka.Environment["KAFKA_ADVERTISED_LISTENERS"])
		}
	}
	api, err := url.Parse(cfg.QoD.APIURL)
	if err != nil || api.Hostname() != "sim" {
		t.Errorf("qodbridge QoD API %q: want the sim service", cfg.QoD.APIURL)
	} else if sim := services["sim"].Command; !slices.Contains(sim, "sim") || !slices.Contains(sim, "0.0.0.0:"+api.Port()) {
		t.Errorf("sim command %q does not serve the port of QODBRIDGE_QOD_API_URL %q on every interface", sim, cfg.QoD.APIURL)
	}
	_, httpPort, _ := net.SplitHostPort(cfg.HTTP.Address)
	if u, err := url.Parse(cfg.HTTP.PublicURL); err != nil || u.Hostname() != "qodbridge" || u.Port() != httpPort {
		t.Errorf("qodbridge public URL %q: the simulator must reach the bridge at http://qodbridge:%s", cfg.HTTP.PublicURL, httpPort)
	}
	for _, dep := range []string{"nats", "kafka", "sim"} {
		if _, ok := br.DependsOn[dep]; !ok {
			t.Errorf("qodbridge does not depend on %s", dep)
		}
	}
	grace, err := time.ParseDuration(br.StopGracePeriod)
	if err != nil || grace <= cfg.ShutdownTimeout.D() {
		t.Errorf("qodbridge stop_grace_period %q must exceed shutdown_timeout %s, or Docker kills a draining bridge", br.StopGracePeriod, cfg.ShutdownTimeout)
	}
}

// TestDockerfileCopiesEverySourceFolder keeps the Dockerfile's COPY lines in
// step with the repository: a top-level folder holding Go code that the
// image build does not copy would fail the build (or worse, be missed).
func TestDockerfileCopiesEverySourceFolder(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	copied := map[string]bool{}
	var stages []string
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			stages = append(stages, line)
		case "COPY":
			if len(stages) == 1 && !strings.HasPrefix(f[1], "--from") {
				for _, src := range f[1 : len(f)-1] {
					copied[strings.TrimSuffix(strings.TrimPrefix(src, "./"), "/")] = true
				}
			}
		}
	}
	if len(stages) != 2 {
		t.Fatalf("Dockerfile: want a builder and a final stage, got %d FROM lines", len(stages))
	}
	if !strings.Contains(stages[1], "distroless/static") || !strings.Contains(stages[1], ":nonroot") {
		t.Errorf("final stage %q: want distroless/static:nonroot", stages[1])
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.buildVersion=", "USER 65532:65532"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !copied[f] {
			t.Errorf("Dockerfile does not copy %s", f)
		}
	}
	root := filepath.Join(deployDir, "..")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		hasGo := false
		filepath.WalkDir(filepath.Join(root, e.Name()), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				hasGo = true
				return filepath.SkipAll
			}
			return nil
		})
		if hasGo && !copied[e.Name()] {
			t.Errorf("Dockerfile does not COPY %s/, which holds Go code", e.Name())
		}
	}
}

// rendered is one kustomize build, decoded.
type rendered struct {
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	serviceAccts map[string]*corev1.ServiceAccount
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	netpols      []*networkingv1.NetworkPolicy
	monitors     []*monitoringv1.ServiceMonitor
}

// newRendered returns an empty set of decoded objects.
func newRendered() *rendered {
	return &rendered{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		serviceAccts: map[string]*corev1.ServiceAccount{},
	}
}

// add decodes one object strictly into its API type, so an unknown or
// misplaced field fails; where names its origin in messages.
func (r *rendered) add(t *testing.T, where, apiVersion, kind, name string, y []byte) {
	t.Helper()
	id := apiVersion + " " + kind + " " + name
	var obj any
	switch apiVersion + "/" + kind {
	case "apps/v1/Deployment":
		v := &appsv1.Deployment{}
		obj, r.deployments[name] = v, v
	case "v1/Service":
		v := &corev1.Service{}
		obj, r.services[name] = v, v
	case "v1/ConfigMap":
		v := &corev1.ConfigMap{}
		obj, r.configMaps[name] = v, v
	case "v1/Secret":
		v := &corev1.Secret{}
		obj, r.secrets[name] = v, v
	case "v1/ServiceAccount":
		v := &corev1.ServiceAccount{}
		obj, r.serviceAccts[name] = v, v
	case "policy/v1/PodDisruptionBudget":
		v := &policyv1.PodDisruptionBudget{}
		obj, r.pdbs = v, append(r.pdbs, v)
	case "autoscaling/v2/HorizontalPodAutoscaler":
		v := &autoscalingv2.HorizontalPodAutoscaler{}
		obj, r.hpas = v, append(r.hpas, v)
	case "networking.k8s.io/v1/NetworkPolicy":
		v := &networkingv1.NetworkPolicy{}
		obj, r.netpols = v, append(r.netpols, v)
	case "monitoring.coreos.com/v1/ServiceMonitor":
		v := &monitoringv1.ServiceMonitor{}
		obj, r.monitors = v, append(r.monitors, v)
	default:
		t.Fatalf("%s: %s: no API type known to this test", where, id)
	}
	if err := sigsyaml.UnmarshalStrict(y, obj); err != nil {
		t.Errorf("%s: %s does not decode into its API type: %v", where, id, err)
	}
}

// render runs kustomize on dir and decodes every object strictly into its
// API type.
func render(t *testing.T, dir string) *rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	r := newRendered()
	for _, res := range rm.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		r.add(t, dir, res.GetGvk().ApiVersion(), res.GetKind(), res.GetName(), y)
	}
	return r
}

// exampleSecret reads the documented Secret keys: key=value lines, and keys
// named in comments ("#   key   meaning").
func exampleSecret(t *testing.T) (values map[string]string, documented []string) {
	t.Helper()
	f, err := os.Open(filepath.Join(deployDir, "k8s/overlays/dev/secrets.example.env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	values = map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if c, ok := strings.CutPrefix(line, "#"); ok {
			if f := strings.Fields(c); len(f) > 1 && strings.Contains(c, "  ") {
				documented = append(documented, f[0])
			}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			values[k] = v
			documented = append(documented, k)
		}
	}
	return values, documented
}

func TestDeployKustomize(t *testing.T) {
	for _, overlay := range []string{"dev", "prod"} {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, filepath.Join(deployDir, "k8s/overlays", overlay))
			// Every container of ours runs the tag the overlay names (an
			// images entry that matches no image is silently ignored).
			wantImage := "ghcr.io/qodbridge/qodbridge:" + map[string]string{"dev": "dev", "prod": "1.0.0"}[overlay]
			for _, d := range r.deployments {
				for _, c := range d.Spec.Template.Spec.Containers {
					if strings.Contains(c.Image, "qodbridge") && c.Image != wantImage {
						t.Errorf("Deployment %s container %s: image %s, want %s", d.Name, c.Name, c.Image, wantImage)
					}
				}
			}
			dep := checkBridge(t, r, bridgeSource{
				deployment: "qodbridge",
				prod:       overlay == "prod",
				documented: func(what string) bool { return documentedSecret(t, overlay, what) },
			})
			// The ServiceMonitor comes only from the component, which prod
			// includes and dev does not.
			switch {
			case overlay == "prod" && len(r.monitors) != 1:
				t.Error("prod has no ServiceMonitor (components/servicemonitor)")
			case overlay == "prod" && (r.monitors[0].Namespace != dep.Namespace || r.monitors[0].Labels["app.kubernetes.io/part-of"] != "qodbridge"):
				t.Errorf("prod ServiceMonitor in namespace %q with labels %v: want the overlay's namespace %q and part-of qodbridge",
					r.monitors[0].Namespace, r.monitors[0].Labels, dep.Namespace)
			case overlay == "dev" && len(r.monitors) != 0:
				t.Error("dev has a ServiceMonitor: local clusters seldom have its CRD")
			}
		})
	}
}

// bridgeSource is one way of deploying the bridge: a Kustomize overlay or
// the Helm chart with a values file.
type bridgeSource struct {
	// deployment is the name of the bridge's Deployment.
	deployment string
	// prod: Secrets made outside git, TLS on the ingress, a documented way
	// to create the Secrets.
	prod bool
	// documented reports whether the install instructions show
	// `kubectl create secret <what>`.
	documented func(what string) bool
}

// checkBridge checks what every deployment of the bridge must get right,
// however it was rendered: the config the pods load with their environment
// starts the bridge, ports, probes, Secret keys, draining, locked-down
// containers, selectors of Services, PDB, HPA, NetworkPolicy and
// ServiceMonitor. It returns the bridge's Deployment.
func checkBridge(t *testing.T, r *rendered, src bridgeSource) *appsv1.Deployment {
	t.Helper()
	exampleValues, documented := exampleSecret(t)
	known := append(config.EnvNames(), "QODBRIDGE_CONFIG")
	dep := r.deployments[src.deployment]
	if dep == nil {
		t.Fatalf("no Deployment %s", src.deployment)
	}
	pod := dep.Spec.Template
	if sel, err := metaSelector(dep.Spec.Selector.MatchLabels); err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Fatalf("Deployment selector %v does not match its pod labels %v", dep.Spec.Selector.MatchLabels, pod.Labels)
	}
	var c *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == "qodbridge" {
			c = &pod.Spec.Containers[i]
		}
	}
	if c == nil {
		t.Fatal("no container qodbridge")
	}
	if !strings.HasPrefix(c.Image, "ghcr.io/qodbridge/qodbridge:") {
		t.Errorf("image %q: the images transformer did not apply", c.Image)
	}
	if sa := pod.Spec.ServiceAccountName; r.serviceAccts[sa] == nil {
		t.Errorf("serviceAccountName %q is not rendered", sa)
	}

	// The environment as the container sees it, secrets resolved from
	// the rendered Secret or, for Secrets made outside git (prod),
	// from the documented example.
	env := map[string]string{}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "QODBRIDGE_") && !slices.Contains(known, e.Name) {
			t.Errorf("env %s is not a variable the bridge reads (config.EnvNames)", e.Name)
		}
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			optional := ref.Optional != nil && *ref.Optional
			if !slices.Contains(documented, ref.Key) {
				t.Errorf("env %s: Secret key %q is not documented in secrets.example.env", e.Name, ref.Key)
			}
			if s := r.secrets[ref.Name]; s != nil {
				v, ok := s.Data[ref.Key]
				if !ok && !optional {
					t.Errorf("env %s: Secret %s has no key %q", e.Name, ref.Name, ref.Key)
				}
				env[e.Name] = string(v)
			} else {
				if !src.prod {
					t.Errorf("env %s: Secret %s is not rendered", e.Name, ref.Name)
				}
				env[e.Name] = exampleValues[ref.Key]
			}
		default:
			t.Errorf("env %s: unexpected source", e.Name)
		}
	}

	// The config file: QODBRIDGE_CONFIG lies in a mounted ConfigMap
	// that holds it; load it with that environment, as the bridge
	// will at start.
	cfgPath := env["QODBRIDGE_CONFIG"]
	delete(env, "QODBRIDGE_CONFIG")
	vol, key := mountFor(t, pod.Spec, *c, cfgPath)
	if vol.ConfigMap == nil {
		t.Fatalf("QODBRIDGE_CONFIG %q is not in a ConfigMap volume", cfgPath)
	}
	cm := r.configMaps[vol.ConfigMap.Name]
	if cm == nil || cm.Data[key] == "" {
		t.Fatalf("ConfigMap %q (volume %s) has no %s", vol.ConfigMap.Name, vol.Name, key)
	}
	tmp := filepath.Join(t.TempDir(), key)
	if err := os.WriteFile(tmp, []byte(cm.Data[key]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(tmp, func(k string) string { return env[k] })
	if err == nil {
		err = Check(cfg)
	}
	if err != nil {
		t.Fatalf("the bridge would not start with ConfigMap %s and the pod's environment: %v", cm.Name, err)
	}
	if cfg.GeneratedToken != "" || cfg.Auth.SessionSecretsGenerated {
		t.Error("tokens and session secrets must come from the Secret, not be generated per pod")
	}
	if cfg.NATSEmbedded() {
		t.Error("the pods must use an external NATS (nats.url): an embedded server's data would live and die with a pod")
	}
	for _, f := range []string{cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile} {
		if f == "" {
			continue
		}
		v, key := mountFor(t, pod.Spec, *c, f)
		if v.Secret == nil || (key != corev1.TLSCertKey && key != corev1.TLSPrivateKeyKey) {
			t.Errorf("http.tls file %s is not a tls.crt/tls.key of a mounted Secret", f)
		}
		if r.secrets[v.Secret.SecretName] == nil && !src.documented("tls "+v.Secret.SecretName) {
			t.Errorf("Secret %s is neither rendered nor documented (kubectl create secret tls)", v.Secret.SecretName)
		}
	}
	if src.prod && cfg.HTTP.TLS.CertFile == "" {
		t.Error("prod serves the ingress without TLS")
	}

	// Ports and probes agree with the listeners.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	wantPort := func(what, addr string, name string) {
		_, p, _ := net.SplitHostPort(addr)
		if strconv.Itoa(int(ports[name])) != p {
			t.Errorf("container port %q is %d, but %s listens on %s", name, ports[name], what, addr)
		}
		if config.IsLoopback(addr) {
			t.Errorf("%s listens on loopback %s: unreachable from the Service and the kubelet", what, addr)
		}
	}
	wantPort("http.address", cfg.HTTP.Address, "http")
	wantPort("admin.address", cfg.Admin.Address, "admin")
	for name, pr := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != want {
			t.Errorf("%s probe: want GET %s", name, want)
			continue
		}
		if p := resolvePort(pr.HTTPGet.Port, ports); p != ports["admin"] {
			t.Errorf("%s probe on port %s, not the admin listener", name, pr.HTTPGet.Port.String())
		}
	}

	// Draining: the kubelet's grace period covers the preStop sleep
	// and the bridge's shutdown_timeout.
	need := cfg.ShutdownTimeout.D()
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if c.Lifecycle.PreStop.Exec != nil {
			t.Error("preStop exec: the distroless image has no shell; use the sleep action")
		}
		if s := c.Lifecycle.PreStop.Sleep; s != nil {
			need += time.Duration(s.Seconds) * time.Second
		}
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= need {
		t.Errorf("terminationGracePeriodSeconds must exceed preStop + shutdown_timeout = %s", need)
	}

	// Every container rendered is locked down and sized.
	for _, d := range r.deployments {
		ps := d.Spec.Template.Spec
		if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot ||
			ps.SecurityContext.SeccompProfile == nil || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("Deployment %s: want runAsNonRoot and seccomp RuntimeDefault", d.Name)
		}
		for _, c := range ps.Containers {
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s/%s: want readOnlyRootFilesystem, no privilege escalation, capabilities drop ALL", d.Name, c.Name)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s/%s: want cpu and memory requests and a memory limit", d.Name, c.Name)
			}
		}
		for _, v := range ps.Volumes {
			if v.ConfigMap != nil && r.configMaps[v.ConfigMap.Name] == nil {
				t.Errorf("%s: volume %s: ConfigMap %s is not rendered", d.Name, v.Name, v.ConfigMap.Name)
			}
		}
	}
	if lim := c.Resources.Limits.Memory(); lim.Cmp(resource.MustParse("150Mi")) < 0 {
		t.Errorf("memory limit %s is below the bridge's 150 MiB working target", lim)
	}

	// Services select pods and name ports those pods have.
	for _, s := range r.services {
		d := selected(r, s.Spec.Selector)
		if d == nil {
			t.Errorf("Service %s selects no Deployment's pods (%v)", s.Name, s.Spec.Selector)
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.Type == intstr.String && !hasPort(d, p.TargetPort.StrVal) {
				t.Errorf("Service %s port %s: targetPort %q is not a port of Deployment %s", s.Name, p.Name, p.TargetPort.StrVal, d.Name)
			}
		}
	}

	if len(r.pdbs) != 1 || r.pdbs[0].Spec.MinAvailable == nil {
		t.Fatalf("want one PodDisruptionBudget with minAvailable, got %d", len(r.pdbs))
	}
	if sel, err := metaSelector(r.pdbs[0].Spec.Selector.MatchLabels); err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Error("the PodDisruptionBudget does not select the bridge's pods")
	}
	if len(r.hpas) != 1 {
		t.Fatalf("want one HorizontalPodAutoscaler, got %d", len(r.hpas))
	}
	hpa := r.hpas[0]
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != dep.Name {
		t.Errorf("HPA scales %s %s, not Deployment %s", ref.Kind, ref.Name, dep.Name)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || *hpa.Spec.MinReplicas > hpa.Spec.MaxReplicas {
		t.Errorf("HPA replicas %v..%d: want 2 ≤ min ≤ max", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	if min := r.pdbs[0].Spec.MinAvailable.IntValue(); hpa.Spec.MinReplicas != nil && int32(min) >= *hpa.Spec.MinReplicas {
		t.Errorf("PDB minAvailable %d blocks every eviction at the HPA's minimum of %d pods", min, *hpa.Spec.MinReplicas)
	}
	// Left out (the Helm chart), the HPA sets the count; given (kubectl
	// apply), it must lie within the HPA's bounds.
	if n := dep.Spec.Replicas; n != nil && (hpa.Spec.MinReplicas == nil || *n < *hpa.Spec.MinReplicas || *n > hpa.Spec.MaxReplicas) {
		t.Errorf("Deployment replicas outside the HPA's bounds")
	}
	cpuMetric := false
	for _, m := range hpa.Spec.Metrics {
		cpuMetric = cpuMetric || m.Resource != nil && m.Resource.Name == corev1.ResourceCPU
	}
	if !cpuMetric {
		t.Error("HPA does not scale on CPU")
	}

	// The NetworkPolicy: the ingress port open, the admin port only
	// to the monitoring namespace, DNS allowed out.
	var np *networkingv1.NetworkPolicy
	for _, p := range r.netpols {
		if sel, err := metaSelector(p.Spec.PodSelector.MatchLabels); err == nil && sel.Matches(labels.Set(pod.Labels)) {
			np = p
		}
	}
	if np == nil {
		t.Fatal("no NetworkPolicy selects the bridge's pods")
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Error("NetworkPolicy must restrict both Ingress and Egress")
	}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == nil {
				continue
			}
			if resolvePort(*p.Port, ports) == 0 {
				t.Errorf("NetworkPolicy ingress port %s is not a port of the bridge", p.Port.String())
			}
			if resolvePort(*p.Port, ports) == ports["admin"] {
				if len(rule.From) == 0 || rule.From[0].NamespaceSelector == nil ||
					rule.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
					t.Error("the admin port must be open only to the monitoring namespace")
				}
			}
		}
	}
	dns := false
	for _, rule := range np.Spec.Egress {
		for _, p := range rule.Ports {
			dns = dns || p.Port != nil && p.Port.IntValue() == 53
		}
	}
	if !dns {
		t.Error("NetworkPolicy egress does not allow DNS")
	}

	// The ServiceMonitor scrapes the admin Service's port.
	for _, m := range r.monitors {
		var svc *corev1.Service
		for _, s := range r.services {
			if sel, err := metaSelector(m.Spec.Selector.MatchLabels); err == nil && sel.Matches(labels.Set(s.Labels)) {
				if svc != nil {
					t.Errorf("ServiceMonitor %s selects several Services: metrics would be scraped twice", m.Name)
				}
				svc = s
			}
		}
		if svc == nil {
			t.Errorf("ServiceMonitor %s selects no Service", m.Name)
			continue
		}
		for _, ep := range m.Spec.Endpoints {
			found := false
			for _, p := range svc.Spec.Ports {
				if p.Name == ep.Port && p.TargetPort.StrVal == "admin" {
					found = true
				}
			}
			if !found || ep.Path != "/metrics" {
				t.Errorf("ServiceMonitor endpoint %s%s is not /metrics on the admin port of Service %s", ep.Port, ep.Path, svc.Name)
			}
		}
	}
	if name := secretRefs(c)[0]; src.prod && !src.documented("generic "+name) {
		t.Errorf("the install instructions do not say how to create the Secret %s", name)
	}
	return dep
}

// secretRefs lists the Secrets the container's environment reads from.
func secretRefs(c *corev1.Container) []string {
	var out []string
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && !slices.Contains(out, e.ValueFrom.SecretKeyRef.Name) {
			out = append(out, e.ValueFrom.SecretKeyRef.Name)
		}
	}
	return append(out, "")
}

// TestDeployKustomizeBase: the base builds on its own and holds only
// objects of Kubernetes' built-in APIs, so `kubectl apply` works on a
// cluster without the Prometheus Operator's CRD; the ServiceMonitor is the
// component components/servicemonitor.
func TestDeployKustomizeBase(t *testing.T) {
	r := render(t, filepath.Join(deployDir, "k8s/base"))
	if len(r.monitors) != 0 {
		t.Errorf("the base renders %d ServiceMonitors: it must build without the Prometheus Operator's CRD", len(r.monitors))
	}
	if r.deployments["qodbridge"] == nil || len(r.pdbs) != 1 || len(r.hpas) != 1 || len(r.netpols) != 1 {
		t.Error("the base lacks the Deployment, PodDisruptionBudget, HorizontalPodAutoscaler or NetworkPolicy")
	}
	b, err := os.ReadFile(filepath.Join(deployDir, "k8s/components/servicemonitor/kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var comp struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := sigsyaml.Unmarshal(b, &comp); err != nil || comp.Kind != "Component" {
		t.Errorf("components/servicemonitor: kind %q (%v): want a Kustomize Component", comp.Kind, err)
	}
}

func metaSelector(m map[string]string) (labels.Selector, error) {
	if len(m) == 0 {
		return nil, fmt.Errorf("empty selector")
	}
	return labels.SelectorFromSet(m), nil
}

// selected returns the Deployment whose pods sel selects.
func selected(r *rendered, sel map[string]string) *appsv1.Deployment {
	s, err := metaSelector(sel)
	if err != nil {
		return nil
	}
	for _, d := range r.deployments {
		if s.Matches(labels.Set(d.Spec.Template.Labels)) {
			return d
		}
	}
	return nil
}

func hasPort(d *appsv1.Deployment, name string) bool {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func resolvePort(p intstr.IntOrString, named map[string]int32) int32 {
	if p.Type == intstr.String {
		return named[p.StrVal]
	}
	for _, v := range named {
		if v == p.IntVal {
			return v
		}
	}
	return 0
}

// mountFor finds the volume mounted over path in c, and the key (file
// name) within it.
func mountFor(t *testing.T, spec corev1.PodSpec, c corev1.Container, path string) (corev1.Volume, string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if filepath.Dir(path) != filepath.Clean(m.MountPath) {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name {
				return v, filepath.Base(path)
			}
		}
	}
	t.Fatalf("%s is not in a mounted volume of container %s", path, c.Name)
	return corev1.Volume{}, ""
}

// documentedSecret reports whether the overlay's kustomization.yaml shows
// the `kubectl create secret` command for a Secret it expects to exist.
func documentedSecret(t *testing.T, overlay, what string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "k8s/overlays", overlay, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte("create secret "+what))
}

// promMetric is a metric the bridge exposes.
type promMetric struct {
	histogram bool
	labels    []string
}

// bridgeMetrics finds the metrics this package registers by reading its
// source: every prometheus.*Opts{Name: "…"} with the label list of its
// New…Vec call, and every name given to metrics.inFlight. Go and process
// collector metrics come from a real registry.
func bridgeMetrics(t *testing.T) map[string]promMetric {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]promMetric{}
	for _, fn := range files {
		if strings.HasSuffix(fn, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, fn, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			if sel.Sel.Name == "inFlight" {
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					name, _ := strconv.Unquote(lit.Value)
					out[name] = promMetric{}
				}
				return true
			}
			if !strings.HasPrefix(sel.Sel.Name, "New") {
				return true
			}
			opts, ok := call.Args[0].(*ast.CompositeLit)
			if !ok {
				return true
			}
			var m promMetric
			name := ""
			for _, el := range opts.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
					if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						name, _ = strconv.Unquote(lit.Value)
					}
				}
			}
			if name == "" {
				return true
			}
			m.histogram = strings.Contains(sel.Sel.Name, "Histogram")
			if len(call.Args) > 1 {
				if lst, ok := call.Args[1].(*ast.CompositeLit); ok {
					for _, el := range lst.Elts {
						if lit, ok := el.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							l, _ := strconv.Unquote(lit.Value)
							m.labels = append(m.labels, l)
						}
					}
				}
			}
			out[name] = m
			return true
		})
	}
	mfs, err := newMetrics().reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if _, ok := out[mf.GetName()]; !ok {
			var lbls []string
			if len(mf.GetMetric()) > 0 {
				for _, lp := range mf.GetMetric()[0].GetLabel() {
					lbls = append(lbls, lp.GetName())
				}
			}
			out[mf.GetName()] = promMetric{histogram: mf.GetType().String() == "HISTOGRAM", labels: lbls}
		}
	}
	return out
}

// targetLabels are added by Prometheus (and the Prometheus Operator) to
// every scraped series.
var targetLabels = []string{"namespace", "pod", "instance", "job", "service", "container", "endpoint"}

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "grafana/qodbridge.json"))
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Datasource map[string]string `json:"datasource"`
		Expr       string            `json:"expr"`
		RefID      string            `json:"refId"`
	}
	type panel struct {
		ID         int               `json:"id"`
		Type       string            `json:"type"`
		Title      string            `json:"title"`
		Datasource map[string]string `json:"datasource"`
		GridPos    struct{ H, W, X, Y int }
		Targets    []target `json:"targets"`
		Panels     []json.RawMessage
	}
	var dash struct {
		UID        string                          `json:"uid"`
		Title      string                          `json:"title"`
		Panels     []panel                         `json:"panels"`
		Templating struct{ List []map[string]any } `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("qodbridge.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	hasDS := false
	for _, v := range dash.Templating.List {
		if v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Fatal("no datasource template variable of type prometheus")
	}

	metrics := bridgeMetrics(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	nameRE := regexp.MustCompile(`\b((?:qodbridge|go|process)_[a-z0-9_]+)\b`)
	byRE := regexp.MustCompile(`\bby \(([^)]*)\)`)
	matcherRE := regexp.MustCompile(`([a-z_]+)\s*(?:=~|!~|!=|=)\s*"`)
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W < 1 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v is outside the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			if len(p.Panels) > 0 {
				t.Errorf("row %q: keep rows expanded (nested panels are not checked)", p.Title)
			}
			continue
		}
		if p.Datasource["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource["uid"] != "${datasource}" {
				t.Errorf("panel %q query %s: datasource %v, want ${datasource}", p.Title, tg.RefID, tg.Datasource)
			}
			var inExpr []promMetric
			for _, m := range nameRE.FindAllString(tg.Expr, -1) {
				base, suffix := m, ""
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(m, s); ok {
						if pm, ok := metrics[b]; ok && pm.histogram {
							base, suffix = b, s
						}
					}
				}
				pm, ok := metrics[base]
				if !ok {
					t.Errorf("panel %q queries %s, which the bridge does not expose", p.Title, m)
					continue
				}
				if pm.histogram && suffix == "" {
					t.Errorf("panel %q queries histogram %s without _bucket/_sum/_count", p.Title, m)
				}
				if pm.histogram && suffix == "_bucket" {
					pm.labels = append(slices.Clone(pm.labels), "le")
				}
				used[base] = true
				inExpr = append(inExpr, pm)
			}
			var lbls []string
			for _, g := range byRE.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(g[1], ",") {
					lbls = append(lbls, strings.TrimSpace(l))
				}
			}
			for _, g := range matcherRE.FindAllStringSubmatch(tg.Expr, -1) {
				lbls = append(lbls, g[1])
			}
			for _, l := range lbls {
				ok := slices.Contains(targetLabels, l)
				for _, pm := range inExpr {
					ok = ok || slices.Contains(pm.labels, l)
				}
				if !ok {
					t.Errorf("panel %q: label %q belongs to no metric of %s", p.Title, l, tg.Expr)
				}
			}
		}
	}
	for name := range metrics {
		if strings.HasPrefix(name, "qodbridge_") && !used[name] {
			t.Errorf("the dashboard shows no panel for %s", name)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes"} {
		if !used[name] {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
}

package deployments_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/httpapi"
)

// kustomization is the part of kustomize's Kustomization this base uses;
// decoded strictly, a misspelt or unsupported field fails.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
		Digest  string `json:"digest"`
	} `json:"images"`
}

// examples are the manifests deliberately left out of the kustomization:
// templates and examples an operator fills in.
var examples = []string{"secret.yaml", "ingress-example.yaml"}

// manifests holds every object of deployments/k8s, decoded strictly.
type manifests struct {
	kust        kustomization
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	jobs        map[string]*batchv1.Job
	pdbs        map[string]*policyv1.PodDisruptionBudget
	ingresses   map[string]*networkingv1.Ingress
	scaled      map[string]*scaledObject
	triggerAuth map[string]*triggerAuthentication
	// listed is the set of objects the kustomization applies, "Kind/name".
	listed map[string]bool
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		jobs: map[string]*batchv1.Job{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		ingresses: map[string]*networkingv1.Ingress{}, scaled: map[string]*scaledObject{},
		triggerAuth: map[string]*triggerAuthentication{}, listed: map[string]bool{},
	}
	data, err := os.ReadFile("k8s/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &m.kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if m.kust.APIVersion != "kustomize.config.k8s.io/v1beta1" || m.kust.Kind != "Kustomization" || m.kust.Namespace == "" {
		t.Errorf("kustomization.yaml: %s %s namespace %q, want a kustomize.config.k8s.io/v1beta1 Kustomization with a namespace",
			m.kust.APIVersion, m.kust.Kind, m.kust.Namespace)
	}
	files, _ := filepath.Glob("k8s/*.yaml")
	for _, f := range files {
		name := filepath.Base(f)
		if name == "kustomization.yaml" {
			continue
		}
		listed := slices.Contains(m.kust.Resources, name)
		if !listed && !slices.Contains(examples, name) {
			t.Errorf("k8s/%s is neither in kustomization.yaml nor a known example", name)
		}
		m.decodeFile(t, f, listed)
	}
	for _, r := range m.kust.Resources {
		if _, err := os.Stat(filepath.Join("k8s", r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
	return m
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

func (m *manifests) decodeFile(t *testing.T, path string, listed bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range docSeparator.Split(string(data), -1) {
		var head metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Errorf("%s document %d: %v", path, i+1, err)
			continue
		}
		if head.Kind == "" {
			if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(doc, "")) != "" {
				t.Errorf("%s document %d has no kind", path, i+1)
			}
			continue
		}
		where := fmt.Sprintf("%s document %d (%s)", path, i+1, head.Kind)
		var obj metav1.Object
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			d := &appsv1.Deployment{}
			obj = m.strict(t, where, doc, d)
			m.deployments[d.Name] = d
		case "v1 Service":
			s := &corev1.Service{}
			obj = m.strict(t, where, doc, s)
			m.services[s.Name] = s
		case "v1 ConfigMap":
			c := &corev1.ConfigMap{}
			obj = m.strict(t, where, doc, c)
			m.configMaps[c.Name] = c
		case "v1 Secret":
			s := &corev1.Secret{}
			obj = m.strict(t, where, doc, s)
			m.secrets[s.Name] = s
		case "batch/v1 Job":
			j := &batchv1.Job{}
			obj = m.strict(t, where, doc, j)
			m.jobs[j.Name] = j
		case "policy/v1 PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			obj = m.strict(t, where, doc, p)
			m.pdbs[p.Name] = p
		case "networking.k8s.io/v1 Ingress":
			in := &networkingv1.Ingress{}
			obj = m.strict(t, where, doc, in)
			m.ingresses[in.Name] = in
		case "keda.sh/v1alpha1 ScaledObject":
			validateCRD(t, where, "keda.sh_scaledobjects.yaml", doc)
			s := &scaledObject{}
			obj = m.strict(t, where, doc, s)
			m.scaled[s.Name] = s
		case "keda.sh/v1alpha1 TriggerAuthentication":
			validateCRD(t, where, "keda.sh_triggerauthentications.yaml", doc)
			a := &triggerAuthentication{}
			obj = m.strict(t, where, doc, a)
			m.triggerAuth[a.Name] = a
		default:
			t.Errorf("%s: %s %s is not a kind this test knows", where, head.APIVersion, head.Kind)
			continue
		}
		if obj.GetName() == "" {
			t.Errorf("%s has no name", where)
		}
		if obj.GetNamespace() != "" {
			t.Errorf("%s sets namespace %s: the kustomization sets it", where, obj.GetNamespace())
		}
		if listed {
			m.listed[head.Kind+"/"+obj.GetName()] = true
		}
	}
}

// strict decodes doc into obj, refusing unknown and duplicate fields.
func (m *manifests) strict(t *testing.T, where, doc string, obj metav1.Object) metav1.Object {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		t.Errorf("%s: %v", where, err)
	}
	return obj
}

func TestKubernetes(t *testing.T) {
	m := loadManifests(t)
	api, worker := m.deployments["imagesvc-api"], m.deployments["imagesvc-worker"]
	migrate := m.jobs["imagesvc-migrate"]
	cm, sec := m.configMaps["imagesvc"], m.secrets["imagesvc"]
	if api == nil || worker == nil || migrate == nil || cm == nil || sec == nil || m.services["imagesvc-api"] == nil {
		t.Fatalf("want Deployments imagesvc-api and imagesvc-worker, Job imagesvc-migrate, Service imagesvc-api, ConfigMap and Secret imagesvc")
	}
	for _, want := range []string{"Deployment/imagesvc-api", "Deployment/imagesvc-worker", "Job/imagesvc-migrate",
		"Service/imagesvc-api", "ConfigMap/imagesvc", "ScaledObject/imagesvc-worker", "TriggerAuthentication/imagesvc-redis"} {
		if !m.listed[want] {
			t.Errorf("kustomization.yaml does not apply %s", want)
		}
	}
	if m.listed["Secret/imagesvc"] {
		t.Error("kustomization.yaml applies the Secret template: applied, it would empty the real one")
	}

	// The Secret is a template: keys without values.
	var keys []string
	for k, v := range sec.StringData {
		keys = append(keys, k)
		if v != "" {
			t.Errorf("Secret imagesvc ships a value for %s", k)
		}
	}
	if len(sec.Data) > 0 {
		t.Error("Secret imagesvc ships data")
	}
	for k := range cm.Data {
		keys = append(keys, k)
	}
	checkNames(t, "ConfigMap and Secret imagesvc", keys)
	if cm.Data["MIGRATE_ON_START"] != "false" {
		t.Errorf("ConfigMap MIGRATE_ON_START = %q, want \"false\": the Job migrates", cm.Data["MIGRATE_ON_START"])
	}

	// The image is set in one place, to an immutable tag.
	var img *struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
		Digest  string `json:"digest"`
	}
	for i := range m.kust.Images {
		if m.kust.Images[i].Name == "imagesvc" {
			img = &m.kust.Images[i]
		}
	}
	if img == nil || img.Digest == "" && (img.NewTag == "" || img.NewTag == "latest") {
		t.Errorf("kustomization.yaml images: %+v, want imagesvc with a fixed tag or digest", img)
	}

	pods := map[string]*corev1.PodTemplateSpec{
		"Deployment imagesvc-api": &api.Spec.Template, "Deployment imagesvc-worker": &worker.Spec.Template,
		"Job imagesvc-migrate": &migrate.Spec.Template,
	}
	for where, pod := range pods {
		checkPod(t, where, pod, m)
	}

	// Probes: on ports the container has, on paths the process serves,
	// readiness pod-local.
	openapi, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	workerPaths := []string{"/healthz", "/healthz/ready", "/readyz", "/metrics"}
	for _, d := range []*appsv1.Deployment{api, worker} {
		c := d.Spec.Template.Spec.Containers[0]
		served := func(path string) bool {
			if d == worker {
				return slices.Contains(workerPaths, path)
			}
			return openapi.Paths.Find(path) != nil
		}
		probes := map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe}
		for kind, p := range probes {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s", d.Name, kind)
				continue
			}
			if !hasPort(c, p.HTTPGet.Port.String()) {
				t.Errorf("%s %s: port %s is not a port of the container", d.Name, kind, p.HTTPGet.Port.String())
			}
			if !served(p.HTTPGet.Path) {
				t.Errorf("%s %s: %s is not served", d.Name, kind, p.HTTPGet.Path)
			}
		}
		if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path != "/healthz/ready" {
			t.Errorf("%s readiness on %s, want the pod-local /healthz/ready", d.Name, c.ReadinessProbe.HTTPGet.Path)
		}
		if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s liveness on %s, want /healthz", d.Name, c.LivenessProbe.HTTPGet.Path)
		}
	}

	// The API: operations off the public port, drained before it stops.
	apiC := api.Spec.Template.Spec.Containers[0]
	opsAddr := envValue(apiC, "OPS_HTTP_ADDR")
	if opsAddr == "" {
		t.Error("the API Deployment does not set OPS_HTTP_ADDR: /metrics and /monitoring would be on the public port")
	} else if _, port, _ := strings.Cut(opsAddr, ":"); !hasPort(apiC, port) || portName(apiC, port) != "ops" {
		t.Errorf("OPS_HTTP_ADDR %s is not the container port named ops", opsAddr)
	}
	for _, svc := range m.services {
		for _, p := range svc.Spec.Ports {
			if p.TargetPort.String() == "ops" || p.TargetPort.String() == strings.TrimPrefix(opsAddr, ":") {
				t.Errorf("Service %s exposes the operations port", svc.Name)
			}
		}
	}
	for _, in := range m.ingresses {
		for _, rule := range in.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				if p.Path == "/" || strings.HasPrefix(p.Path, "/metrics") || strings.HasPrefix(p.Path, "/monitoring") {
					t.Errorf("Ingress %s routes %s: /metrics and /monitoring must stay private", in.Name, p.Path)
				}
				if p.Backend.Service == nil || p.Backend.Service.Port.Name == "ops" {
					t.Errorf("Ingress %s path %s: not the API's public port", in.Name, p.Path)
				}
			}
		}
	}
	preStop := time.Duration(0)
	if l := apiC.Lifecycle; l == nil || l.PreStop == nil {
		t.Error("the API has no preStop pause: a rollout drops connections still routed to a stopping pod")
	} else if l.PreStop.Sleep != nil {
		preStop = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
	}
	drain := parseDuration(t, "SHUTDOWN_DRAIN_DELAY", cm.Data["SHUTDOWN_DRAIN_DELAY"])
	if drain <= 0 {
		t.Error("SHUTDOWN_DRAIN_DELAY is not set in the ConfigMap")
	}
	if grace := seconds(api.Spec.Template.Spec.TerminationGracePeriodSeconds); grace <= preStop+drain+apiShutdownTimeout {
		t.Errorf("API grace period %s is not longer than preStop %s + SHUTDOWN_DRAIN_DELAY %s + %s", grace, preStop, drain, apiShutdownTimeout)
	}

	// The worker: KEDA owns its replicas; it finishes its tasks before the kill.
	if worker.Spec.Replicas != nil {
		t.Error("the worker Deployment sets replicas: every apply resets what KEDA scaled to")
	}
	shutdown := parseDuration(t, "WORKER_SHUTDOWN_TIMEOUT", cm.Data["WORKER_SHUTDOWN_TIMEOUT"])
	if grace := seconds(worker.Spec.Template.Spec.TerminationGracePeriodSeconds); grace <= shutdown {
		t.Errorf("worker grace period %s is not longer than WORKER_SHUTDOWN_TIMEOUT %s", grace, shutdown)
	}

	// The migration Job runs the API's migrate command with the same settings.
	jobC := migrate.Spec.Template.Spec.Containers[0]
	if !slices.Equal(jobC.Args, []string{"api", "migrate"}) {
		t.Errorf("migration Job args %q, want [api migrate]", jobC.Args)
	}
	if fmt.Sprint(jobC.EnvFrom) != fmt.Sprint(apiC.EnvFrom) {
		t.Error("the migration Job does not read the API's ConfigMap and Secret")
	}

	// PDBs and topology spread for both Deployments.
	for _, d := range []*appsv1.Deployment{api, worker} {
		podLabels := labels.Set(d.Spec.Template.Labels)
		covered := false
		for _, p := range m.pdbs {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			covered = covered || err == nil && sel.Matches(podLabels) && m.listed["PodDisruptionBudget/"+p.Name]
		}
		if !covered {
			t.Errorf("no PodDisruptionBudget in the kustomization covers %s", d.Name)
		}
		spread := false
		for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
			sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
			spread = spread || err == nil && sel.Matches(podLabels) && c.TopologyKey == "kubernetes.io/hostname"
		}
		if !spread {
			t.Errorf("%s has no topology spread across nodes on its own pods", d.Name)
		}
	}

	// MySQL connections: every worker KEDA may start, with its pool, plus
	// the API replicas and the Job, fit MySQL's default max_connections
	// (151), with some left for people.
	const mysqlMaxConnections, reserve = 151, 10
	pool := func(c corev1.Container) int {
		if v := envValue(c, "DB_MAX_OPEN_CONNS"); v != "" {
			n, _ := strconv.Atoi(v)
			return n
		}
		if v := cm.Data["DB_MAX_OPEN_CONNS"]; v != "" {
			n, _ := strconv.Atoi(v)
			return n
		}
		return gormstore.NewDefaultConfig().MaxOpenConns
	}
	so := m.scaled["imagesvc-worker"]
	if so == nil {
		t.Fatal("no ScaledObject imagesvc-worker")
	}
	apiReplicas := 1
	if api.Spec.Replicas != nil {
		apiReplicas = int(*api.Spec.Replicas)
	}
	total := int(so.Spec.MaxReplicaCount)*pool(worker.Spec.Template.Spec.Containers[0]) + apiReplicas*pool(apiC) + pool(jobC)
	if total > mysqlMaxConnections-reserve {
		t.Errorf("MySQL connections at full scale: %d, over %d-%d", total, mysqlMaxConnections, reserve)
	}

	checkScaledObject(t, m, so, worker)
}

// checkPod checks the hardening every pod of ours has.
func checkPod(t *testing.T, where string, pod *corev1.PodTemplateSpec, m *manifests) {
	t.Helper()
	spec := pod.Spec
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s mounts a service account token it never uses", where)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext needs runAsNonRoot and seccompProfile RuntimeDefault", where)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: want one container", where)
	}
	c := spec.Containers[0]
	if c.Image != "imagesvc" {
		t.Errorf("%s image %q: want imagesvc, which kustomization.yaml sets", where, c.Image)
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s container: want allowPrivilegeEscalation false, readOnlyRootFilesystem, capabilities drop ALL", where)
	}
	if _, ok := c.Resources.Requests[corev1.ResourceEphemeralStorage]; !ok {
		t.Errorf("%s requests no ephemeral-storage", where)
	}
	for _, ref := range c.EnvFrom {
		switch {
		case ref.ConfigMapRef != nil && m.configMaps[ref.ConfigMapRef.Name] == nil:
			t.Errorf("%s reads ConfigMap %s, which is not defined", where, ref.ConfigMapRef.Name)
		case ref.SecretRef != nil && m.secrets[ref.SecretRef.Name] == nil:
			t.Errorf("%s reads Secret %s, which secret.yaml does not describe", where, ref.SecretRef.Name)
		}
	}
	var env []string
	for _, e := range c.Env {
		env = append(env, e.Name)
	}
	checkNames(t, where, env)
	if c.Name == "migrate" {
		return
	}
	// The root filesystem is read-only: uploads and libvips write to a
	// size-limited emptyDir at /tmp.
	tmp := false
	for _, vm := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == vm.Name && vm.MountPath == "/tmp" && v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil {
				tmp = true
			}
		}
	}
	if !tmp {
		t.Errorf("%s has no size-limited emptyDir at /tmp", where)
	}
	// GOMEMLIMIT below the memory limit.
	limit := c.Resources.Limits.Memory()
	var gomem *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "GOMEMLIMIT" {
			gomem = &c.Env[i]
		}
	}
	switch {
	case limit.IsZero():
		t.Errorf("%s has no memory limit", where)
	case gomem == nil:
		t.Errorf("%s does not set GOMEMLIMIT from its memory limit", where)
	case gomem.ValueFrom != nil:
		if r := gomem.ValueFrom.ResourceFieldRef; r == nil || r.Resource != "limits.memory" {
			t.Errorf("%s GOMEMLIMIT comes from %+v, want limits.memory", where, gomem.ValueFrom)
		}
	default:
		n, err := parseGoMemLimit(gomem.Value)
		if err != nil || n <= 0 || float64(n) > 0.9*float64(limit.Value()) {
			t.Errorf("%s GOMEMLIMIT %s (%v) is not within 90%% of the memory limit %s", where, gomem.Value, err, limit)
		}
	}
}

// parseGoMemLimit reads GOMEMLIMIT's syntax: bytes, with an optional
// B, KiB, MiB, GiB or TiB suffix.
func parseGoMemLimit(s string) (int64, error) {
	for i, suffix := range []string{"TiB", "GiB", "MiB", "KiB", "B"} {
		if num, ok := strings.CutSuffix(s, suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			return n << (10 * (4 - i)), err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func hasPort(c corev1.Container, port string) bool {
	return portName(c, port) != "" || slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == port })
}

// portName is the name of the container port numbered port, or "".
func portName(c corev1.Container, port string) string {
	for _, p := range c.Ports {
		if strconv.Itoa(int(p.ContainerPort)) == port {
			if p.Name == "" {
				return "-"
			}
			return p.Name
		}
	}
	return ""
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func seconds(s *int64) time.Duration {
	if s == nil {
		return 30 * time.Second // Kubernetes' default
	}
	return time.Duration(*s) * time.Second
}

// measuredPeakRSS is the highest resident memory measured for each
// process, in bytes, and where (README): the API with 64 clients sending
// 20 MB uploads at once ("Reliability and load"); a worker at concurrency
// 2 on the costliest sources an upload can carry, a 50 MP GIF (`make
// bench-hostile`, "Security").
var measuredPeakRSS = map[string]int64{"imagesvc-api": 128e6, "imagesvc-worker": 540e6}

// TestMemoryFromMeasurements: each Deployment requests at least the peak
// measured, so the scheduler does not pack pods that together outgrow the
// node, and its limit leaves at least half as much again, so the peak is
// not an OOM kill.
func TestMemoryFromMeasurements(t *testing.T) {
	m := loadManifests(t)
	for name, peak := range measuredPeakRSS {
		d := m.deployments[name]
		if d == nil {
			t.Fatalf("no Deployment %s", name)
		}
		res := d.Spec.Template.Spec.Containers[0].Resources
		if req := res.Requests.Memory().Value(); req < peak {
			t.Errorf("%s requests %s of memory, under the measured peak of %d MB", name, res.Requests.Memory(), peak/1e6)
		}
		if lim := res.Limits.Memory().Value(); lim < peak*3/2 {
			t.Errorf("%s memory limit %s leaves less than half again the measured peak of %d MB", name, res.Limits.Memory(), peak/1e6)
		}
	}
}

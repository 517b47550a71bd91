package deployments_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/santhosh-tekuri/jsonschema/v6"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/imagesvc/imagesvc/internal/queue"
)

// KEDA's objects are checked twice. First against the CRDs' OpenAPI
// schemas, vendored from KEDA's release in testdata/keda (see its README):
// the kedacore module itself is far too heavy for a test dependency, and
// the schema is exactly what the API server checks. Then decoded strictly
// into the small structs below, transcribed from the same CRDs, to read
// the fields the rest of the test relates to the Deployments.

type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount int32  `json:"maxReplicaCount"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior"`
			} `json:"horizontalPodAutoscalerConfig"`
		} `json:"advanced"`
		Triggers []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind"`
			} `json:"authenticationRef"`
		} `json:"triggers"`
	} `json:"spec"`
}

type triggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// redisScalerMetadata are the trigger metadata keys KEDA's redis and
// redis-sentinel scalers read (pkg/scalers/redis_scaler.go, v2.20.2); "…FromEnv" variants read
// the value from the target container's environment. The CRD leaves
// metadata a free map, so a misspelt key would pass its schema.
var redisScalerMetadata = []string{
	"address", "addresses", "host", "hosts", "port", "ports", "username", "password",
	"sentinelUsername", "sentinelPassword", "sentinelMaster", "unsafeSsl",
	"listLength", "activationListLength", "listName", "databaseIndex", "enableTLS",
	"addressFromEnv", "hostFromEnv", "portFromEnv", "usernameFromEnv", "passwordFromEnv",
	"sentinelUsernameFromEnv", "sentinelPasswordFromEnv", "sentinelMasterFromEnv",
}

// redisScalerAuthParams are the parameters a TriggerAuthentication may give
// the redis scaler (same source).
var redisScalerAuthParams = []string{
	"address", "addresses", "host", "hosts", "port", "ports", "username", "password",
	"sentinelUsername", "sentinelPassword", "sentinelMaster", "tls", "ca", "cert", "key", "keyPassword",
}

// validateCRD validates doc against the v1alpha1 schema of a vendored CRD,
// with every object that lists its properties closed to others.
func validateCRD(t *testing.T, where, crdFile, doc string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "keda", crdFile))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatalf("%s: %v", crdFile, err)
	}
	var schema map[string]any
	for _, v := range crd.Spec.Versions {
		if v.Name == "v1alpha1" {
			schema = v.Schema.OpenAPIV3Schema
		}
	}
	if schema == nil {
		t.Fatalf("%s has no v1alpha1 schema", crdFile)
	}
	closeObjects(schema)
	c := jsonschema.NewCompiler()
	if err := c.AddResource("file:///"+crdFile, schema); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("file:///" + crdFile)
	if err != nil {
		t.Fatalf("%s: %v", crdFile, err)
	}
	j, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("%s does not fit KEDA's CRD: %#v", where, err)
	}
}

// closeObjects sets additionalProperties: false on every schema object that
// lists properties and does not allow others (the API server prunes those,
// and strict validation reports them).
func closeObjects(s map[string]any) {
	if props, ok := s["properties"].(map[string]any); ok {
		if _, set := s["additionalProperties"]; !set && s["x-kubernetes-preserve-unknown-fields"] != true {
			s["additionalProperties"] = false
		}
		for _, p := range props {
			if m, ok := p.(map[string]any); ok {
				closeObjects(m)
			}
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if m, ok := s[k].(map[string]any); ok {
			closeObjects(m)
		}
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if list, ok := s[k].([]any); ok {
			for _, x := range list {
				if m, ok := x.(map[string]any); ok {
					closeObjects(m)
				}
			}
		}
	}
}

// asynqLists returns the Redis lists asynq keeps a task of queue in while it
// waits and while a worker runs it, found by doing it: a task is enqueued
// on an in-memory Redis and looked for, then handled by an asynq server and
// looked for again. Nothing is copied from asynq's source.
func asynqLists(t *testing.T, queueName string) (pending, active string) {
	t.Helper()
	mr := miniredis.RunT(t)
	opt := asynq.RedisClientOpt{Addr: mr.Addr()}
	client := asynq.NewClient(opt)
	defer client.Close()
	info, err := client.Enqueue(asynq.NewTask("probe", nil), asynq.Queue(queueName))
	if err != nil {
		t.Fatal(err)
	}
	holding := func() string {
		var found []string
		for _, k := range mr.Keys() {
			if mr.Type(k) != "list" {
				continue
			}
			if items, _ := mr.List(k); slices.Contains(items, info.ID) {
				found = append(found, k)
			}
		}
		if len(found) != 1 {
			t.Fatalf("task %s is in the lists %q, want one", info.ID, found)
		}
		return found[0]
	}
	pending = holding()

	running, release := make(chan struct{}), make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 1, Queues: map[string]int{queueName: 1}, LogLevel: asynq.FatalLevel})
	err = srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { close(running); <-release; return nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	select {
	case <-running:
	case <-time.After(10 * time.Second):
		t.Fatal("asynq did not start the task within 10 s")
	}
	active = holding()
	close(release)
	return pending, active
}

func checkScaledObject(t *testing.T, m *manifests, so *scaledObject, worker *appsv1.Deployment) {
	t.Helper()
	if so.Spec.ScaleTargetRef.Name != worker.Name {
		t.Errorf("ScaledObject scales %q, not the worker Deployment %q", so.Spec.ScaleTargetRef.Name, worker.Name)
	}
	if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
		t.Error("ScaledObject may scale workers to zero: retries, the reconciler and webhook delivery run in workers")
	}
	pending, active := asynqLists(t, queue.QueueImages)
	lists := map[string]string{}
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "redis" && tr.Type != "redis-sentinel" {
			t.Errorf("ScaledObject trigger of type %s; want redis or redis-sentinel", tr.Type)
			continue
		}
		for k := range tr.Metadata {
			if !slices.Contains(redisScalerMetadata, k) {
				t.Errorf("redis trigger %s: KEDA's redis scaler reads no %q", tr.Name, k)
			}
		}
		lists[tr.Metadata["listName"]] = tr.Metadata["listLength"]
		// KEDA's operator resolves names in its own namespace.
		addrs := []string{tr.Metadata["address"]}
		if tr.Type == "redis-sentinel" {
			addrs = strings.Split(tr.Metadata["addresses"], ",")
			if tr.Metadata["sentinelMaster"] == "" {
				t.Errorf("redis-sentinel trigger %s names no sentinelMaster", tr.Name)
			}
		}
		for _, addr := range addrs {
			host, port, err := net.SplitHostPort(addr)
			if want := ".svc.cluster.local"; err != nil || port == "" || !strings.HasSuffix(host, "."+m.kust.Namespace+want) {
				t.Errorf("%s trigger %s: address %q, want host.%s%s:port (the operator runs in another namespace)",
					tr.Type, tr.Name, addr, m.kust.Namespace, want)
			}
		}
		if ref := tr.AuthenticationRef; ref != nil {
			ta := m.triggerAuth[ref.Name]
			if ta == nil || !m.listed["TriggerAuthentication/"+ref.Name] {
				t.Errorf("redis trigger %s uses TriggerAuthentication %s, which the kustomization does not apply", tr.Name, ref.Name)
				continue
			}
			for _, s := range ta.Spec.SecretTargetRef {
				if !slices.Contains(redisScalerAuthParams, s.Parameter) {
					t.Errorf("TriggerAuthentication %s: the redis scaler takes no parameter %q", ta.Name, s.Parameter)
				}
				if sec := m.secrets[s.Name]; sec == nil {
					t.Errorf("TriggerAuthentication %s reads Secret %s, which secret.yaml does not describe", ta.Name, s.Name)
				} else if _, ok := sec.StringData[s.Key]; !ok {
					t.Errorf("TriggerAuthentication %s reads key %s of Secret %s, which it lacks", ta.Name, s.Key, s.Name)
				}
			}
		}
	}
	if _, ok := lists[pending]; !ok {
		t.Errorf("no trigger on the pending list %s (asynq's, for queue %s); triggers on %v", pending, queue.QueueImages, lists)
	}
	// Busy workers count: one replica per WORKER_CONCURRENCY running tasks.
	concurrency := envValue(worker.Spec.Template.Spec.Containers[0], "WORKER_CONCURRENCY")
	if n, ok := lists[active]; !ok {
		t.Errorf("no trigger on the active list %s: workers busy on long images would be scaled away", active)
	} else if n != concurrency {
		t.Errorf("active-list trigger listLength %s, want the worker's WORKER_CONCURRENCY %s", n, concurrency)
	}
	if c, err := strconv.Atoi(concurrency); err != nil || c < 1 {
		t.Errorf("worker WORKER_CONCURRENCY %q, want a number: left to the CPU count, it follows the node, not the request", concurrency)
	}
}

package deployments_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/redisconn"
)

// overlay is the part of a Kustomization the Sentinel overlay uses,
// decoded strictly.
type overlay struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Patches    []struct {
		Path string `json:"path"`
	} `json:"patches"`
}

// TestSentinelOverlay checks k8s/sentinel, the base with Redis behind
// Sentinel: its patches apply to objects of the base (merged here as
// kustomize merges a custom resource: maps merged, lists replaced), the
// processes accept the resulting settings, and KEDA's triggers ask the
// Sentinels the processes use, for the master they use.
func TestSentinelOverlay(t *testing.T) {
	m := loadManifests(t)
	data, err := os.ReadFile("k8s/sentinel/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var kust overlay
	if err := yaml.UnmarshalStrict(data, &kust); err != nil {
		t.Fatalf("sentinel/kustomization.yaml: %v", err)
	}
	if kust.Kind != "Kustomization" || !slices.Equal(kust.Resources, []string{"../"}) {
		t.Errorf("sentinel/kustomization.yaml: %s on %q, want a Kustomization on the base ../", kust.Kind, kust.Resources)
	}
	var patches []string
	for _, p := range kust.Patches {
		patches = append(patches, p.Path)
	}
	files, _ := filepath.Glob("k8s/sentinel/*.yaml")
	for _, f := range files {
		if name := filepath.Base(f); name != "kustomization.yaml" && !slices.Contains(patches, name) {
			t.Errorf("k8s/sentinel/%s is not a patch of its kustomization", name)
		}
	}

	merged := map[string]map[string]any{} // "Kind/name" -> the base object with the patch
	for _, p := range patches {
		data, err := os.ReadFile(filepath.Join("k8s/sentinel", p))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range docSeparator.Split(string(data), -1) {
			var patch map[string]any
			if err := yaml.Unmarshal([]byte(doc), &patch); err != nil || patch == nil {
				t.Fatalf("sentinel/%s: %v", p, err)
			}
			key := patch["kind"].(string) + "/" + patch["metadata"].(map[string]any)["name"].(string)
			base := baseObject(t, m, key)
			if base == nil {
				t.Errorf("sentinel/%s patches %s, which the base does not apply", p, key)
				continue
			}
			merged[key] = mergePatch(base, patch).(map[string]any)
		}
	}

	var cm corev1.ConfigMap
	decodeMerged(t, merged, "ConfigMap/imagesvc", &cm)
	var keys []string
	for k := range cm.Data {
		keys = append(keys, k)
	}
	checkNames(t, "sentinel/configmap.yaml", keys)
	addrs, err := redisconn.ParseSentinelAddrs(cm.Data["REDIS_SENTINEL_ADDRS"])
	if err != nil || cm.Data["REDIS_SENTINEL_MASTER"] == "" {
		t.Fatalf("sentinel ConfigMap: REDIS_SENTINEL_ADDRS %q (%v), REDIS_SENTINEL_MASTER %q",
			cm.Data["REDIS_SENTINEL_ADDRS"], err, cm.Data["REDIS_SENTINEL_MASTER"])
	}

	// The processes start on the ConfigMap and the Secret the README says
	// to create for Sentinel (REDIS_PASSWORD, no REDIS_URL), and refuse the
	// base's Secret with REDIS_URL beside the Sentinel settings.
	env := map[string]string{}
	for k, v := range cm.Data {
		env[k] = v
	}
	env["DATABASE_URL"] = "mysql://imagesvc:pw@mysql:3306/imagesvc"
	env["DELIVERY_SIGNING_KEYS"] = "k1:q8Xr0fK1s9VdW3mZbN7yT2eL5gH4jP6cA1uI0oR8tYk="
	env["REDIS_PASSWORD"] = "pw"
	env["REDIS_SENTINEL_PASSWORD"] = "spw"
	getenv := func(k string) string { return env[k] }
	c, err := config.FromEnv(config.Worker, getenv)
	if err != nil {
		t.Errorf("a worker on the Sentinel overlay's settings: %v", err)
	} else if !c.Redis.Sentinel() || !slices.Equal(c.Redis.SentinelAddrs, addrs) {
		t.Errorf("a worker on the Sentinel overlay's settings uses Redis %+v", c.Redis)
	}
	env["REDIS_URL"] = "redis://:pw@redis:6379/0"
	if _, err := config.FromEnv(config.Worker, getenv); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Errorf("a worker with REDIS_URL beside the Sentinel settings: %v, want a refusal", err)
	}

	// KEDA asks the same Sentinels for the same master.
	overlaid := *m
	overlaid.triggerAuth = map[string]*triggerAuthentication{}
	for k, v := range m.triggerAuth {
		overlaid.triggerAuth[k] = v
	}
	if _, ok := merged["TriggerAuthentication/imagesvc-redis"]; ok {
		ta := &triggerAuthentication{}
		decodeMerged(t, merged, "TriggerAuthentication/imagesvc-redis", ta)
		validateCRD(t, "sentinel TriggerAuthentication", "keda.sh_triggerauthentications.yaml", mustJSON(t, merged["TriggerAuthentication/imagesvc-redis"]))
		overlaid.triggerAuth[ta.Name] = ta
	}
	so := &scaledObject{}
	decodeMerged(t, merged, "ScaledObject/imagesvc-worker", so)
	validateCRD(t, "sentinel ScaledObject", "keda.sh_scaledobjects.yaml", mustJSON(t, merged["ScaledObject/imagesvc-worker"]))
	checkScaledObject(t, &overlaid, so, m.deployments["imagesvc-worker"])
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "redis-sentinel" {
			t.Errorf("sentinel ScaledObject trigger %s is of type %s, want redis-sentinel", tr.Name, tr.Type)
			continue
		}
		if got := strings.Split(tr.Metadata["addresses"], ","); !slices.Equal(got, addrs) {
			t.Errorf("trigger %s asks the Sentinels %q, the processes %q", tr.Name, got, addrs)
		}
		if tr.Metadata["sentinelMaster"] != cm.Data["REDIS_SENTINEL_MASTER"] {
			t.Errorf("trigger %s watches master %q, the processes %q", tr.Name, tr.Metadata["sentinelMaster"], cm.Data["REDIS_SENTINEL_MASTER"])
		}
	}
}

// baseObject returns the base's object "Kind/name" as the kustomization
// applies it, as a generic map; nil if it applies none.
func baseObject(t *testing.T, m *manifests, key string) map[string]any {
	t.Helper()
	if !m.listed[key] {
		return nil
	}
	for _, r := range m.kust.Resources {
		data, err := os.ReadFile(filepath.Join("k8s", r))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range docSeparator.Split(string(data), -1) {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil || obj == nil {
				continue
			}
			meta, _ := obj["metadata"].(map[string]any)
			if kind, _ := obj["kind"].(string); meta != nil && kind+"/"+meta["name"].(string) == key {
				return obj
			}
		}
	}
	return nil
}

// mergePatch applies patch to base as a JSON merge patch (RFC 7386):
// what kustomize does with a patch of a custom resource, and, for the
// ConfigMap's data, the same as a strategic merge.
func mergePatch(base, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	b, ok := base.(map[string]any)
	if !ok {
		b = map[string]any{}
	}
	out := map[string]any{}
	for k, v := range b {
		out[k] = v
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = mergePatch(out[k], v)
	}
	return out
}

// decodeMerged decodes the merged object key strictly into obj.
func decodeMerged(t *testing.T, merged map[string]map[string]any, key string, obj any) {
	t.Helper()
	o, ok := merged[key]
	if !ok {
		t.Fatalf("the Sentinel overlay does not patch %s", key)
	}
	if err := yaml.UnmarshalStrict([]byte(mustJSON(t, o)), obj); err != nil {
		t.Fatalf("%s with the Sentinel overlay: %v", key, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

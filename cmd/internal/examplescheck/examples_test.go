package examplescheck

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const root = "../../.."

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; .ci/run installs it): skipping the alert rule checks")
	}
	return p
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}

// TestAlertRulesPassPromtool: the shipped alert rules load in Prometheus.
func TestAlertRulesPassPromtool(t *testing.T) {
	run(t, promtool(t), "check", "rules", filepath.Join(root, "examples/prometheus/alerts.yml"))
}

// TestAlertRulesUnitTests: the alerts fire, with these labels and texts,
// on the series in testdata/alerts_test.yml, and stay quiet otherwise.
func TestAlertRulesUnitTests(t *testing.T) {
	run(t, promtool(t), "test", "rules", "testdata/alerts_test.yml")
}

// TestFleetManifests checks examples/kubernetes/fleet is what its README
// says: 3 replicas, readiness on /readyz, scrape annotations, a Service,
// a PodDisruptionBudget, Redis as a StatefulSet, no password in argv.
func TestFleetManifests(t *testing.T) {
	docs := map[string]map[string]any{}
	for _, f := range []string{"airlock.yaml", "redis.yaml"} {
		b, err := os.ReadFile(filepath.Join(root, "examples/kubernetes/fleet", f))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var d map[string]any
			if err := dec.Decode(&d); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			docs[d["kind"].(string)+"/"+get(d, "metadata", "name").(string)] = d
		}
	}
	for _, k := range []string{"Deployment/airlock", "Service/airlock", "PodDisruptionBudget/airlock", "StatefulSet/airlock-redis", "Service/airlock-redis"} {
		if docs[k] == nil {
			t.Errorf("no %s", k)
		}
	}
	dep := docs["Deployment/airlock"]
	if dep == nil {
		t.FailNow()
	}
	if r := get(dep, "spec", "replicas"); r != 3 {
		t.Errorf("replicas %v, want 3", r)
	}
	ann, _ := get(dep, "spec", "template", "metadata", "annotations").(map[string]any)
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "7700" {
		t.Errorf("scrape annotations: %v", ann)
	}
	c := get(dep, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	if p := get(c, "readinessProbe", "httpGet", "path"); p != "/readyz" {
		t.Errorf("readiness path %v", p)
	}
	args, _ := yaml.Marshal(c["args"])
	if strings.Contains(string(args), "redis://") {
		t.Error("the state url (with its password) is in argv; use AIRLOCK_STATE")
	}
	if m := get(docs["PodDisruptionBudget/airlock"], "spec", "minAvailable"); m != 2 {
		t.Errorf("pdb minAvailable %v", m)
	}
}

func get(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

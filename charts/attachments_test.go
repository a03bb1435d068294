package charts_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// jsonSchema is the part of a JSON schema this test compares.
type jsonSchema struct {
	Type       any                    `json:"type"`
	Properties map[string]*jsonSchema `json:"properties"`
	Items      *jsonSchema            `json:"items"`
	Required   []string               `json:"required"`
	Minimum    *float64               `json:"minimum"`
	Maximum    *float64               `json:"maximum"`
	MinLength  *int64                 `json:"minLength"`
	MaxLength  *int64                 `json:"maxLength"`
	MaxItems   *int64                 `json:"maxItems"`
	Pattern    string                 `json:"pattern"`
	Enum       []any                  `json:"enum"`
	// AdditionalProperties false: a typo in a key fails the render.
	AdditionalProperties any `json:"additionalProperties"`
}

// The chart's schema of chatCluster.spec.attachments is the CRD's (keys, types,
// bounds, formats), so helm refuses early what the API server would refuse,
// and never what it would accept.
func TestSchemaAttachmentsMatchesCRD(t *testing.T) {
	var values struct {
		Properties map[string]struct {
			Properties map[string]struct {
				Properties map[string]*jsonSchema `json:"properties"`
			} `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(chart, "values.schema.json")), &values); err != nil {
		t.Fatal(err)
	}
	chartAtt := values.Properties["chatCluster"].Properties["spec"].Properties["attachments"]
	if chartAtt == nil {
		t.Fatal("values.schema.json has no chatCluster.spec.attachments")
	}
	var crd apiextensionsv1.CustomResourceDefinition
	b, err := os.ReadFile(filepath.Join(chart, "files", "crds", "chat.parley.dev_chatclusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	crdAtt := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["attachments"]
	compareSchema(t, "attachments", &crdAtt, chartAtt)
}

func compareSchema(t *testing.T, path string, crd *apiextensionsv1.JSONSchemaProps, ch *jsonSchema) {
	t.Helper()
	if ch == nil {
		t.Errorf("values.schema.json lacks chatCluster.spec.%s", path)
		return
	}
	switch {
	case crd.XIntOrString:
		if !reflect.DeepEqual(ch.Type, []any{"string", "integer"}) {
			t.Errorf("%s: type %v, want [string integer] (a quantity)", path, ch.Type)
		}
	case ch.Type != crd.Type:
		t.Errorf("%s: type %v, the CRD %q", path, ch.Type, crd.Type)
	}
	eqF := func(what string, a *float64, b *float64) {
		if (a == nil) != (b == nil) || (a != nil && *a != *b) {
			t.Errorf("%s: %s differs from the CRD's", path, what)
		}
	}
	eqI := func(what string, a *int64, b *int64) {
		if (a == nil) != (b == nil) || (a != nil && *a != *b) {
			t.Errorf("%s: %s differs from the CRD's", path, what)
		}
	}
	eqF("minimum", crd.Minimum, ch.Minimum)
	eqF("maximum", crd.Maximum, ch.Maximum)
	eqI("minLength", crd.MinLength, ch.MinLength)
	eqI("maxLength", crd.MaxLength, ch.MaxLength)
	eqI("maxItems", crd.MaxItems, ch.MaxItems)
	if crd.Pattern != "" && crd.Pattern != ch.Pattern {
		t.Errorf("%s: pattern %q, the CRD %q", path, ch.Pattern, crd.Pattern)
	}
	if strings.Join(crd.Required, ",") != strings.Join(ch.Required, ",") {
		t.Errorf("%s: required %v, the CRD %v", path, ch.Required, crd.Required)
	}
	if len(crd.Enum) != len(ch.Enum) {
		t.Errorf("%s: enum %v, the CRD %d values", path, ch.Enum, len(crd.Enum))
	}
	if crd.Items != nil && crd.Items.Schema != nil {
		compareSchema(t, path+"[]", crd.Items.Schema, ch.Items)
	}
	if len(crd.Properties) > 0 && ch.AdditionalProperties != false {
		t.Errorf("%s: additionalProperties should be false, so a misspelt key fails the render", path)
	}
	for name, p := range crd.Properties {
		compareSchema(t, path+"."+name, &p, ch.Properties[name])
	}
	for name := range ch.Properties {
		if _, ok := crd.Properties[name]; !ok {
			t.Errorf("values.schema.json has chatCluster.spec.%s.%s, which the CRD does not", path, name)
		}
	}
}

// A ChatCluster with attachments renders as given; the schema refuses both
// stores, neither, a misspelt key and out-of-range limits before anything
// reaches the cluster.
func TestTemplateChatClusterAttachments(t *testing.T) {
	base := []string{"--set", "chatCluster.enabled=true", "--set", "chatCluster.spec.replicas=1", "--api-versions", chatClusterAPI}
	r := template(t, append(base,
		"--set", "chatCluster.spec.attachments.s3.endpoint=https://s3.example.com",
		"--set", "chatCluster.spec.attachments.s3.bucket=parley-files",
		"--set", "chatCluster.spec.attachments.s3.credentialsSecret.name=parley-s3",
		"--set", "chatCluster.spec.attachments.maxAttachmentMiB=200")...)
	r.decodeAll(t)
	ds := r.find("ChatCluster")
	if len(ds) != 1 {
		t.Fatalf("rendered %v", r.kinds())
	}
	var got struct {
		Spec struct {
			Attachments map[string]any `json:"attachments"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(ds[0].raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"s3": map[string]any{"endpoint": "https://s3.example.com", "bucket": "parley-files",
			"credentialsSecret": map[string]any{"name": "parley-s3"}},
		"maxAttachmentMiB": float64(200),
	}
	if !reflect.DeepEqual(got.Spec.Attachments, want) {
		t.Errorf("attachments %v, want %v", got.Spec.Attachments, want)
	}

	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"chatCluster.spec.attachments.maxAttachmentMiB=100"}, "/chatCluster/spec/attachments"},
		{[]string{"chatCluster.spec.attachments.s3.endpoint=https://s3.example.com", "chatCluster.spec.attachments.s3.bucket=b-1",
			"chatCluster.spec.attachments.volume.size=1Gi"}, "/chatCluster/spec/attachments"},
		{[]string{"chatCluster.spec.attachments.s3.endpoint=https://s3.example.com", "chatCluster.spec.attachments.s3.bucket=b-1",
			"chatCluster.spec.attachments.s3.credentialSecret.name=x"}, "additional properties 'credentialSecret' not allowed"},
		{[]string{"chatCluster.spec.attachments.volume.size=1Gi", "chatCluster.spec.attachments.quotaMiB=0"}, "/chatCluster/spec/attachments/quotaMiB"},
		{[]string{"chatCluster.spec.attachments.s3.endpoint=https://s3.example.com", "chatCluster.spec.attachments.s3.bucket=Parley_Files"},
			"/chatCluster/spec/attachments/s3/bucket"},
		{[]string{"chatCluster.spec.attachments.volume.accessModes={ReadWriteSometimes}"}, "/chatCluster/spec/attachments/volume/accessModes/0"},
	} {
		args := []string{"template", release, chart, "--namespace", namespace, "--set", "chatCluster.enabled=true"}
		for _, s := range tc.set {
			args = append(args, "--set", s)
		}
		_, err := helm(t, args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %v: err %v, want one containing %q", tc.set, err, tc.want)
		}
	}
}

package auth

import (
	"encoding/json"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/verity-dev/verity"
)

func TestRulesReadFromYAML(t *testing.T) {
	const doc = `
access:
  - roles: [orders-service]
    categories: [order]
    actions: [read, write]
  - users: [reporting]
    streams: ["report-*", totals]
    actions: [read, metadata-read, $mw]
`
	var cfg struct {
		Access []Rule `yaml:"access"`
	}
	mustNil(t, yaml.Unmarshal([]byte(doc), &cfg))
	if len(cfg.Access) != 2 {
		t.Fatalf("read %d rules, want 2", len(cfg.Access))
	}
	r := cfg.Access[1]
	if got := r.Actions; len(got) != 3 || got[0] != Read || got[1] != MetadataRead || got[2] != MetadataWrite {
		t.Fatalf("actions %v", got)
	}
	for _, r := range cfg.Access {
		mustNil(t, r.Validate())
	}
	if !r.grants(Read, "report-2024") || !r.grants(Read, "totals") || r.grants(Read, "totals-2") || r.grants(Write, "totals") {
		t.Fatal("rule grants the wrong streams or actions")
	}

	var bad struct {
		Access []Rule `yaml:"access"`
	}
	err := yaml.Unmarshal([]byte("access: [{users: [a], streams: [a], actions: [fly]}]"), &bad)
	if err == nil || !strings.Contains(err.Error(), `"fly"`) {
		t.Fatalf("unknown action: error %v, want it to name \"fly\"", err)
	}
}

func TestActionTextRoundTrip(t *testing.T) {
	for _, a := range AllActions {
		b, err := json.Marshal(a)
		mustNil(t, err)
		var back Action
		mustNil(t, json.Unmarshal(b, &back))
		if back != a {
			t.Fatalf("%s came back as %s", a, back)
		}
	}
	for in, want := range map[string]Action{"READ": Read, "metadata_write": MetadataWrite, "metaread": MetadataRead, "$d": Delete} {
		got, err := ParseAction(in)
		mustNil(t, err)
		if got != want {
			t.Fatalf("ParseAction(%q) = %s, want %s", in, got, want)
		}
	}
	_, err := ParseAction("")
	wantKind(t, err, verity.Invalid)
}

func TestRuleCoverage(t *testing.T) {
	r := Rule{Users: []string{"u"}, Streams: []string{"inv-*", "one"}, Categories: []string{"order"}, Actions: []Action{Read}}
	cases := []struct {
		name   string
		got    bool
		expect bool
	}{
		{"a category covers its streams", r.coversStream("order-1"), true},
		{"a category does not cover a longer category", r.coversStream("orders-1"), false},
		{"a category covers prefixes within it", r.coversPrefix("order-12"), true},
		{"a category does not cover its bare name as a prefix", r.coversPrefix("order"), false},
		{"a stream prefix covers longer prefixes", r.coversPrefix("inv-2024"), true},
		{"a stream prefix does not cover shorter ones", r.coversPrefix("in"), false},
		{"a stream prefix covers the category it spells", r.coversCategory("inv"), true},
		{"an exact stream covers no prefix", r.coversPrefix("one"), false},
		{"an exact stream covers itself", r.coversStream("one"), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.expect {
				t.Fatalf("got %v, want %v", c.got, c.expect)
			}
		})
	}
}

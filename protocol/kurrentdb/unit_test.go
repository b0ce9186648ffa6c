package kurrentdb

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

func TestOptionsValidateNamesTheBadField(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		want string // "" for valid
	}{
		{"the zero value is valid", Options{}, ""},
		{"a full version is valid", Options{Version: "25.0.1-rc.1", Advertise: "db:2113"}, ""},
		{"a negative subscription limit", Options{MaxSubscriptionsPerConnection: -1}, "MaxSubscriptionsPerConnection"},
		{"a negative read batch", Options{MaxReadBatch: -5}, "MaxReadBatch"},
		{"a negative append size", Options{MaxAppendSize: -1}, "MaxAppendSize"},
		{"a negative append count", Options{MaxAppendEvents: -1}, "MaxAppendEvents"},
		{"a version clients cannot parse", Options{Version: "25.x"}, "Version"},
		{"an advertised address without port", Options{Advertise: "db.example"}, "Advertise"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to name %s", err, tc.want)
			}
		})
	}
}

func TestMetadataIsWrittenAsKurrentDBWritesIt(t *testing.T) {
	tb := uint64(7)
	m := verity.StreamMetadata{
		MaxAge:         90 * time.Second,
		MaxCount:       5,
		TruncateBefore: &tb,
		ACL:            &verity.StreamACL{Read: []string{"admin"}, Write: []string{"ops", "svc"}},
		Custom:         map[string]json.RawMessage{"owner": json.RawMessage(`"team-a"`)},
	}
	b, err := kurrentMetadataJSON(m)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"$acl":{"$r":"admin","$w":["ops","svc"]},"$maxAge":90,"$maxCount":5,"$tb":7,"owner":"team-a"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestErrorKindsMapToGRPCCodes(t *testing.T) {
	seen := map[string]verity.ErrorKind{}
	for k := verity.Internal; k <= verity.ResourceExhausted; k++ {
		c := grpcCode(k)
		if k != verity.Conflict && k != verity.Deleted { // told apart by their trailers
			if prev, ok := seen[c.String()]; ok {
				t.Errorf("kinds %v and %v share code %v", prev, k, c)
			}
		}
		seen[c.String()] = k
	}
	if grpcCode(verity.ErrorKind(200)).String() != "Internal" {
		t.Fatal("an unknown kind is not Internal")
	}
}

package grpcapi

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
)

func TestUnknownFieldNamesThePathToTheFirstUnknownField(t *testing.T) {
	unknown := func() *verityv1.EventData {
		e := &verityv1.EventData{Type: "OrderPlaced"}
		e.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
		return e
	}
	top := &verityv1.AppendRequest{Stream: "order-1"}
	top.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
	for _, c := range []struct {
		name string
		req  *verityv1.AppendRequest
		want string
	}{
		{"a request without unknown fields has none", &verityv1.AppendRequest{Stream: "order-1", Events: []*verityv1.EventData{{Type: "A"}}}, ""},
		{"an unknown field of the request itself is named by the request", top, "AppendRequest"},
		{"an unknown field in the second event of a list is named by the list", &verityv1.AppendRequest{Events: []*verityv1.EventData{{Type: "A"}, unknown()}}, "AppendRequest.events"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := unknownField(c.req.ProtoReflect(), "AppendRequest"); got != c.want {
				t.Fatalf("unknownField = %q, want %q", got, c.want)
			}
		})
	}
}

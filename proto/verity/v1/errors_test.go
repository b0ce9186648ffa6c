package verityv1_test

import (
	"context"
	"errors"
	"testing"

	"github.com/verity-dev/verity"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestKindsMapOneToOneOntoCodes(t *testing.T) {
	seen := map[codes.Code]verity.ErrorKind{}
	for k := verity.Internal; k <= verity.ResourceExhausted; k++ {
		c := verityv1.CodeOf(k)
		if other, dup := seen[c]; dup {
			t.Fatalf("kinds %v and %v share code %v", other, k, c)
		}
		seen[c] = k
		if back := verityv1.KindOfCode(c); back != k {
			t.Errorf("kind %v → code %v → kind %v", k, c, back)
		}
		if c == codes.Canceled || c == codes.DeadlineExceeded || c == codes.OK || c == codes.Unknown {
			t.Errorf("kind %v uses code %v, which is reserved for the context's errors, success, or the unknown", k, c)
		}
	}
	if c := verityv1.CodeOf(verity.ErrorKind(250)); c != codes.Internal {
		t.Errorf("an unknown kind has code %v, want Internal", c)
	}
	for _, c := range []codes.Code{codes.Unknown, codes.OutOfRange, codes.Unimplemented, codes.DataLoss} {
		if k := verityv1.KindOfCode(c); k != verity.Internal {
			t.Errorf("code %v is kind %v, want Internal", c, k)
		}
	}
}

func TestContextErrorsTravelAsTheirCodes(t *testing.T) {
	for _, err := range []error{context.Canceled, context.DeadlineExceeded} {
		st := verityv1.Status(err)
		back := verityv1.ErrorFromStatus(st.Err())
		if back != err {
			t.Errorf("%v → %v → %v", err, st.Code(), back)
		}
	}
	if verityv1.ErrorFromStatus(nil) != nil || verityv1.Status(nil).Code() != codes.OK {
		t.Error("nil does not round trip as OK")
	}
}

func TestStatusWithoutDetailFollowsItsCode(t *testing.T) {
	err := verityv1.ErrorFromStatus(status.Error(codes.Aborted, "proxy says no"))
	var ve *verity.Error
	if !errors.As(err, &ve) || ve.Kind != verity.Conflict || ve.Message != "proxy says no" {
		t.Fatalf("got %#v, want a Conflict with the status message", err)
	}
	err = verityv1.ErrorFromStatus(errors.New("not a status"))
	if verity.KindOf(err) != verity.Internal || !errors.As(err, &ve) {
		t.Fatalf("a non-status error became %v, want an Internal *verity.Error", err)
	}
}

func TestErrorRoundTripKeepsEveryField(t *testing.T) {
	exp := verity.Exact(3)
	in := &verity.Error{
		Kind: verity.Conflict, Op: "append", Stream: "order-7", Message: "expected revision 3, actual 5",
		Expected: &exp, Actual: &verity.StreamState{Exists: true, Revision: 5}, Err: errors.New("cause"),
	}
	out := verityv1.ErrorFromStatus(verityv1.Status(in).Err())
	var ve *verity.Error
	if !errors.As(out, &ve) {
		t.Fatalf("got %T", out)
	}
	if ve.Error() != in.Error() || *ve.Expected != exp || *ve.Actual != *in.Actual || !errors.Is(out, verity.ErrConflict) {
		t.Fatalf("got %#v, want %#v", ve, in)
	}
}

package grpcapi

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// unknownField returns the path of the first message, m or one nested in it, that holds
// fields its descriptor does not declare; "" when there is none. It runs on every request,
// so the path is only put together once such a message is found.
func unknownField(m protoreflect.Message, path string) string {
	names, found := unknownIn(m)
	if !found {
		return ""
	}
	if len(names) == 0 {
		return path
	}
	return path + "." + strings.Join(names, ".")
}

// unknownIn reports whether m or a message nested in it holds undeclared fields, with the
// names of the fields that lead to the first such message, outermost first.
func unknownIn(m protoreflect.Message) (names []string, found bool) {
	if len(m.GetUnknown()) > 0 {
		return nil, true
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		var sub []string
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && !found; i++ {
				sub, found = unknownIn(l.Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				sub, found = unknownIn(mv.Message())
				return !found
			})
		default:
			sub, found = unknownIn(v.Message())
		}
		if found {
			names = append([]string{string(fd.Name())}, sub...)
		}
		return !found
	})
	return names, found
}

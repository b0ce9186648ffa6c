package grpcapi

import (
	"google.golang.org/protobuf/reflect/protoreflect"
)

// unknownField returns the path of the first message, m or one nested in it, that holds
// fields its descriptor does not declare; "" when there is none.
func unknownField(m protoreflect.Message, path string) string {
	if len(m.GetUnknown()) > 0 {
		return path
	}
	var found string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		sub := path + "." + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && found == ""; i++ {
				found = unknownField(l.Get(i).Message(), sub)
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				found = unknownField(mv.Message(), sub)
				return found == ""
			})
		default:
			found = unknownField(v.Message(), sub)
		}
		return found == ""
	})
	return found
}

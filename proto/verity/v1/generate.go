// Package verityv1 is Verity's own gRPC services: verity.v1.Store, which mirrors the
// verity.Store contract one call per method, and verity.v1.Groups, which mirrors
// verity.Groups (consumer groups); and the helpers both sides share: the conversions
// between the protobuf messages and the root package's types (convert.go, groups.go) and
// the mapping of error kinds onto gRPC status codes and back (errors.go).
//
// store.pb.go, store_grpc.pb.go, groups.pb.go and groups_grpc.pb.go are generated from
// store.proto and groups.proto and committed, so a build needs no protoc. To regenerate
// after editing a .proto file, with protoc (3.21 or later) and the plugins protoc-gen-go
// and protoc-gen-go-grpc on PATH, run `go generate` in this folder.
package verityv1

//go:generate sh -c "cd ../../.. && protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative proto/verity/v1/store.proto proto/verity/v1/groups.proto"

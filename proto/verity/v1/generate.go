// Package verityv1 is Verity's own gRPC service, verity.v1.Store, which mirrors the
// verity.Store contract one call per method, and the helpers both of its sides share: the
// conversions between the protobuf messages and the root package's types (convert.go) and
// the mapping of error kinds onto gRPC status codes and back (errors.go).
//
// store.pb.go and store_grpc.pb.go are generated from store.proto and committed, so a build
// needs no protoc. To regenerate after editing store.proto, with protoc (3.21 or later) and
// the plugins protoc-gen-go and protoc-gen-go-grpc on PATH, run `go generate` in this folder.
package verityv1

//go:generate sh -c "cd ../../.. && protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative proto/verity/v1/store.proto"

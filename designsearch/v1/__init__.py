"""Generated protobuf and gRPC stubs of the public API (package designsearch.v1). Do not edit."""

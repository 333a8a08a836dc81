"""Generated protobuf and gRPC stubs (package designsearch.v1). Do not edit."""

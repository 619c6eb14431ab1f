"""Generated gRPC/protobuf contracts (built by `make proto`)."""

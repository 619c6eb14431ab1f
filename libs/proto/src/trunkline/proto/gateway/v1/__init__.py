"""Generated contracts: trunkline.proto.gateway.v1 (built by `make proto`)."""

"""Generated contracts: trunkline.proto.gateway (built by `make proto`)."""

"""Generated contracts: trunkline.proto.common (built by `make proto`)."""

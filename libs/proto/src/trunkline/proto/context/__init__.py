"""Generated contracts: trunkline.proto.context (built by `make proto`)."""

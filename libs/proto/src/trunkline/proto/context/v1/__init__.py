"""Generated contracts: trunkline.proto.context.v1 (built by `make proto`)."""

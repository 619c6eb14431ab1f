"""Generated contracts: trunkline.proto.hitl (built by `make proto`)."""

"""Generated contracts: trunkline.proto.hitl.v1 (built by `make proto`)."""

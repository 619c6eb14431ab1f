"""Generated contracts: trunkline.proto.events.v1 (built by `make proto`)."""

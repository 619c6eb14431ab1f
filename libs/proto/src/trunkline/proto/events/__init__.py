"""Generated contracts: trunkline.proto.events (built by `make proto`)."""

"""Generated contracts: trunkline.proto.common.v1 (built by `make proto`)."""

"""Generated contracts: trunkline.proto.stt.v1 (built by `make proto`)."""

"""Generated contracts: trunkline.proto.stt (built by `make proto`)."""

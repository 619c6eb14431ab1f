"""Generated contracts: trunkline.proto.tts.v1 (built by `make proto`)."""

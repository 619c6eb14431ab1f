"""Generated contracts: trunkline.proto.tts (built by `make proto`)."""

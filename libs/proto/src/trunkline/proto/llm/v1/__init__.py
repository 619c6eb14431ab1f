"""Generated contracts: trunkline.proto.llm.v1 (built by `make proto`)."""

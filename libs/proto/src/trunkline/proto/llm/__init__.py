"""Generated contracts: trunkline.proto.llm (built by `make proto`)."""

"""The `trunkline` command: local stack, simulated caller, knowledge-base tools."""

"""Cost ledger."""

"""Context arithmetic pipeline, knowledge ingestion and semantic cache."""

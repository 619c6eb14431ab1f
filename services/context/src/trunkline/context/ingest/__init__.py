"""Knowledge ingestion: parse documents, chunk, embed, upsert idempotently."""

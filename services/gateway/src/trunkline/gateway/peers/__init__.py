"""The gateway's view of its peers (STT, context, LLM, TTS): small ABCs, domain types, gRPC
clients. The ABC's public method owns deadlines, retries, metrics and tracing; a client writes
only the ``_impl``."""

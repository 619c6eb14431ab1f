"""Streaming speech recognition service."""

"""Streaming speech synthesis service."""

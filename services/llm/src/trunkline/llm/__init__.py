"""Prompt compilation and streaming generation service."""

"""Fixtures of the context service's tests."""

from __future__ import annotations

import pytest

from trunkline.context.fakes import HashEmbedder, MemoryStore


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()

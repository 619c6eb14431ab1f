"""The MiniLM embedder with the real model: a short single text embedded on the event loop
(no thread hop) gives the vector the embedding thread and a batch give; a long text, a batch,
or a text arriving while the thread is busy go to the thread, with the same results."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from trunkline.context.backends.embedder import MiniLMEmbedder

pytestmark = pytest.mark.integration

SHORT = "What are your opening hours on Saturday?"
LONG = " ".join(["Could you tell me whether the clinic is open on Saturday morning"] * 8)


@pytest.fixture(scope="module")
def embedders() -> Iterator[tuple[MiniLMEmbedder, MiniLMEmbedder]]:
    inline, threaded = MiniLMEmbedder(inline_tokens=48), MiniLMEmbedder(inline_tokens=0)
    yield inline, threaded
    inline.close()
    threaded.close()


async def test_inline_thread_and_batch_give_the_same_vectors(
    embedders: tuple[MiniLMEmbedder, MiniLMEmbedder],
) -> None:
    inline, threaded = embedders
    assert inline.count_tokens(SHORT) + 2 <= 48 < inline.count_tokens(LONG)
    a = await inline.embed([SHORT])
    b = await threaded.embed([SHORT])
    batch = await threaded.embed([LONG, SHORT, "Do you open on Sundays?"])
    assert a.shape == (1, 384)
    assert np.allclose(a[0], b[0], atol=1e-6)
    assert np.allclose(a[0], batch[1], atol=1e-4)  # batched with padding: same up to rounding
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    long_inline, long_threaded = await inline.embed([LONG]), await threaded.embed([LONG])
    assert np.allclose(long_inline, long_threaded, atol=1e-6)
    assert float(a[0] @ long_inline[0]) > 0.5  # the same topic, not an empty vector
    assert float(a[0] @ (await inline.embed(["The parcel was delivered late."]))[0]) < 0.5


async def test_concurrent_calls_while_the_thread_is_busy_agree(
    embedders: tuple[MiniLMEmbedder, MiniLMEmbedder],
) -> None:
    inline, _ = embedders
    texts = [SHORT, LONG, "Do you open on Sundays?", SHORT]
    together = await asyncio.gather(*(inline.embed([t]) for t in texts))
    alone = [await inline.embed([t]) for t in texts]
    for got, want in zip(together, alone, strict=True):
        assert np.allclose(got, want, atol=1e-6)
    assert np.allclose(together[0], together[3], atol=1e-6)

"""The pure stages: chunking, filter expression, dedup, ranking, set algebra (the cache's
rules are in test_cache_rules.py)."""

from __future__ import annotations

import pytest

from trunkline.context.backends.tenant_layout import tenant_partition
from trunkline.context.core.chunking import ChunkingPolicy, Section, chunk_sections
from trunkline.context.core.confidence import confidence
from trunkline.context.core.dedup import content_hash, deduplicate
from trunkline.context.core.filters import access_filter, check_ident, encode_roles, visible
from trunkline.context.core.ranking import bm25_scores, embedded_scores, order_by, ranks, rrf
from trunkline.context.core.setalgebra import SetOp, chunk_items, combine, pack, prefer_first
from trunkline.context.core.types import (
    Caller,
    ChunkMeta,
    ContextItem,
    Hit,
    LiveRecord,
    StoredChunk,
)

pytestmark = pytest.mark.unit


def chunk(text: str, entity: str = "", source: str = "doc.md", cid: str = "") -> StoredChunk:
    return StoredChunk(
        chunk_id=cid or content_hash(text)[:8] + source,
        text=text,
        source=source,
        section="s",
        content_hash=content_hash(text),
        doc_hash="d",
        entity=entity,
        meta=ChunkMeta("acme", ("*",)),
        kb_version=1,
    )


def test_chunks_respect_size_and_overlap_and_sections() -> None:
    body = " ".join(f"Sentence number {i} is here." for i in range(60))
    drafts = chunk_sections(
        [Section("A", body), Section("B", "Short one.")],
        ChunkingPolicy(max_chars=200, overlap_chars=60),
    )
    a = [d for d in drafts if d.section == "A"]
    assert all(len(d.text) <= 200 for d in drafts)
    assert drafts[-1].section == "B"
    assert drafts[-1].text == "Short one."
    last_sentence = a[0].text.split(". ")[-1]
    assert last_sentence in a[1].text, "consecutive chunks overlap"
    assert [d.ordinal for d in drafts] == list(range(len(drafts)))


def test_overlong_word_run_is_split() -> None:
    drafts = chunk_sections(
        [Section("", "x" * 500)], ChunkingPolicy(max_chars=100, overlap_chars=10)
    )
    assert drafts
    assert all(len(d.text) <= 100 for d in drafts)


def test_filter_expression_pushes_tenant_role_and_time() -> None:
    expr = access_filter(Caller("acme", "caller", 1000))
    assert expr == (
        'tenant == "acme" and (roles like "%|caller|%" or roles like "%|*|%")'
        " and valid_from <= 1000 and valid_to > 1000"
    )


@pytest.mark.parametrize("bad", ['acme" or tenant != "', "ACME", "a b", "", "x%"])
def test_identifiers_cannot_inject(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid tenant"):
        check_ident("tenant", bad)
    with pytest.raises(ValueError, match="invalid role"):
        access_filter(Caller("acme", bad, 0))


def test_visible_matches_roles_and_window() -> None:
    meta = ChunkMeta("acme", ("staff",), 10, 20)
    assert visible(meta, Caller("acme", "staff", 10))
    assert not visible(meta, Caller("acme", "staff", 20))
    assert not visible(meta, Caller("acme", "caller", 15))
    assert not visible(meta, Caller("globex", "staff", 15))
    assert encode_roles(("b", "a", "a")) == "|a|b|"


def test_dedup_drops_exact_and_near_duplicates_keeping_best() -> None:
    base = "We store your personal data only as long as needed to provide the service."
    hits = [
        Hit(chunk(base, source="a.md"), 0.9),
        Hit(chunk(base.upper(), source="b.md"), 0.8),  # same normalised text
        Hit(chunk(base + " Free of charge.", source="c.md"), 0.7),  # near duplicate
        Hit(chunk("Roaming costs nine euros per day outside the EU.", source="d.md"), 0.6),
    ]
    kept = deduplicate(hits, near_threshold=0.8)
    assert [h.chunk.source for h in kept] == ["a.md", "d.md"]


def test_bm25_and_rrf() -> None:
    scores = bm25_scores("roaming cost", ["roaming cost per day", "billing cycle", "roaming"])
    assert scores[0] > scores[2] > scores[1] == 0.0
    assert ranks([0.1, 0.9, 0.5]) == [3, 1, 2]
    fused = rrf([[1, 2], [2, 1]])
    assert fused[0] == pytest.approx(fused[1])


def test_embedded_ranking_lifts_lexical_match() -> None:
    hits = [
        Hit(chunk("Payment is due 14 days after the bill."), 0.50),
        Hit(chunk("Switch roaming off by texting ROAM OFF to 2222."), 0.49),
        Hit(chunk("Roaming in the EU costs the same as at home."), 0.48),
    ]
    ranked = order_by(hits, embedded_scores("how do I switch roaming off", hits), top_k=1)
    assert ranked[0][0].chunk.text.startswith("Switch roaming off")
    with pytest.raises(ValueError, match="scores"):
        order_by(hits, [1.0], 1)


def test_set_algebra_union_intersection_difference() -> None:
    items = chunk_items(
        [
            (Hit(chunk("Router fix", entity="router-x1"), 0.9), 0.9),
            (Hit(chunk("Phone fix", entity="phone-s9"), 0.8), 0.8),
            (Hit(chunk("General policy"), 0.7), 0.7),
        ]
    )
    crm = [LiveRecord("crm", "router-x1", "owns Router X1 since 2024")]
    billing = [LiveRecord("billing", "inv-7", "invoice 7: 30 euros, unpaid")]
    records = {"crm": crm, "billing": billing}

    union = combine(items, records, [SetOp("union", "billing")])
    assert [i.citation for i in union][-1] == "billing:inv-7"
    assert len(union) == 4

    inter = combine(items, records, [SetOp("intersection", "crm")])
    assert [(i.entity, i.live) for i in inter] == [("router-x1", False), ("router-x1", True)]

    diff = combine(items, records, [SetOp("difference", "crm")])
    assert [i.text for i in diff] == ["Phone fix", "General policy"]

    with pytest.raises(KeyError, match="unknown data source"):
        combine(items, records, [SetOp("union", "nope")])


def test_pack_respects_budget_and_numbers_citations() -> None:
    items = [ContextItem(f"fact {i} " + "word " * 40, f"doc#{i}", "doc", "", 1.0) for i in range(5)]
    block = pack(items, budget=120)
    assert block.tokens <= 120
    assert block.truncated
    assert block.text.startswith("[1] fact 0")
    assert "doc#" not in block.text  # the numbers stand for the citations
    assert [i.citation for i in block.items] == [f"doc#{i}" for i in range(len(block.items))]
    assert len(block.items) < 5
    whole = pack(items[:1], budget=1000)
    assert not whole.truncated
    assert len(whole.items) == 1


def test_prefer_first_puts_the_cached_items_ahead_in_their_order() -> None:
    items = [ContextItem(f"fact {i}", f"doc#{i}", "doc", "", 1.0) for i in range(4)]
    ordered = prefer_first(items, ["doc#3", "nope#1", "doc#1"])
    assert [i.citation for i in ordered] == ["doc#3", "doc#1", "doc#0", "doc#2"]
    assert prefer_first(items, []) == items


def test_confidence() -> None:
    assert confidence([]) == 0.0
    assert confidence([Hit(chunk("x"), 0.9)]) == 1.0
    assert confidence([Hit(chunk("x"), 0.1)]) == 0.0


def test_tenant_partitions_are_valid_milvus_names_and_never_collide() -> None:
    tenants = ["acme", "a.b", "a_b", "a-b", "a__b", "a_d", "a.d", "a_h", "a-h", "0" * 63]
    names = [tenant_partition(t) for t in tenants]
    assert len(set(names)) == len(tenants)
    for name in names:
        assert name.startswith("t_")
        assert all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in name)
        assert len(name) <= 255
    with pytest.raises(ValueError, match="tenant"):
        tenant_partition("Acme Corp")

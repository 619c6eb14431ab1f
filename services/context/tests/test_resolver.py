"""Resolve and ingestion over fakes implementing the real ABCs."""

from __future__ import annotations

import pytest

from trunkline.agents import RankMode, Retrieval
from trunkline.context.core.setalgebra import SetOp
from trunkline.context.core.types import Caller, ChunkMeta
from trunkline.context.errors import AccessDeniedError, InvalidRequestError, UnknownTenantError
from trunkline.context.fakes import FixedRanker, HashEmbedder, MemoryStore
from trunkline.context.ingest.ingestor import Ingestor
from trunkline.context.ingest.parsers import parse
from trunkline.context.resolver import Resolver, spec_set_ops

pytestmark = pytest.mark.unit

DOC = b"""# Roaming
Roaming in the EU costs the same as at home.

# Switching off
Text ROAM OFF to 2222 to switch roaming off.
"""


async def test_ingest_is_idempotent_and_resolve_runs_the_stages(
    embedder: HashEmbedder, memory_store: MemoryStore
) -> None:
    ingestor = Ingestor(embedder, memory_store)
    meta = ChunkMeta("acme", ("caller",))
    first = await ingestor.ingest("roaming.md", DOC, meta)
    again = await ingestor.ingest("roaming.md", DOC, meta)
    changed = await ingestor.ingest("roaming.md", DOC + b"\nNew fact.", meta)
    assert (first.status, first.chunks_written) == ("created", 2)
    assert (again.status, again.chunks_written, again.kb_version) == ("unchanged", 0, 1)
    assert (changed.status, changed.chunks_deleted, changed.kb_version) == ("replaced", 2, 2)

    caller = Caller("acme", "caller", 100)
    memory_store.allow(caller)
    result = await Resolver(embedder, memory_store).resolve(
        "switch roaming off", caller, Retrieval(top_k=1)
    )
    assert [s.name for s in result.stages] == [
        "embed",
        "filter",
        "search",
        "dedup",
        "rank",
        "set_algebra",
    ]
    assert memory_store.expressions == [result.stages[1].detail]
    assert result.block is not None
    assert "ROAM OFF" in result.block.text
    assert result.cacheable
    assert result.kb_version == 2


async def test_unknown_tenant_and_forbidden_role_are_clear_errors(
    embedder: HashEmbedder, memory_store: MemoryStore
) -> None:
    await Ingestor(embedder, memory_store).ingest("r.md", DOC, ChunkMeta("acme", ("staff",)))
    resolver = Resolver(embedder, memory_store)
    with pytest.raises(UnknownTenantError, match="unknown tenant 'globex'"):
        await resolver.resolve("q", Caller("globex", "caller", 0), Retrieval())
    with pytest.raises(AccessDeniedError, match="role 'caller'"):
        await resolver.resolve("q", Caller("acme", "caller", 0), Retrieval())
    with pytest.raises(InvalidRequestError, match="invalid tenant"):
        await resolver.resolve("q", Caller('acme" or 1', "caller", 0), Retrieval())
    with pytest.raises(InvalidRequestError, match="empty"):
        await resolver.resolve("  ", Caller("acme", "staff", 0), Retrieval())


async def test_cross_encoder_used_and_failure_falls_back(
    embedder: HashEmbedder, memory_store: MemoryStore
) -> None:
    await Ingestor(embedder, memory_store).ingest("r.md", DOC, ChunkMeta("acme", ("*",)))
    caller = Caller("acme", "caller", 0)
    memory_store.allow(caller)
    spec = Retrieval(rank_mode=RankMode.CROSS_ENCODER, top_k=2)
    good = FixedRanker()
    result = await Resolver(embedder, memory_store, cross_encoder=good).resolve(
        "roaming", caller, spec
    )
    assert result.rank_mode == "cross_encoder"
    assert good.calls == 1
    assert result.block is not None
    lengths = [len(i.text) for i in result.block.items]
    assert lengths == sorted(lengths, reverse=True)

    down = FixedRanker(fail=True)
    result = await Resolver(embedder, memory_store, cross_encoder=down).resolve(
        "roaming", caller, spec
    )
    assert result.rank_mode == "embedded_fallback"
    assert down.calls == 2, "one retry before falling back"


def test_parsers_keep_structure() -> None:
    md = parse(
        "a.md", b"---\ntenant: globex\n---\n# A\ntext a\n## B\ntext b\n```\n# not a heading\n```"
    )
    assert [s.title for s in md] == ["", "A", "A > B"]
    assert "# not a heading" in md[2].body
    html = parse("a.html", b"<h1>T</h1><script>x()</script><p>one</p><h2>U</h2><p>two</p>")
    assert [(s.title, s.body) for s in html] == [("T", "one"), ("T > U", "two")]
    rows = parse(
        "t.csv",
        b"id,product,subject,resolution\n1,r1,Reboots,Update firmware\n",
        entity_field="product",
    )
    assert rows[0].title == "Reboots"
    assert rows[0].entity == "r1"
    assert "Update firmware" in rows[0].body
    tickets = parse(
        "t.json", b'{"items": [{"subject": "S", "body": "B", "sku": "k"}]}', entity_field="sku"
    )
    assert (tickets[0].title, tickets[0].entity) == ("S", "k")
    with pytest.raises(InvalidRequestError, match="unsupported file type"):
        parse("a.exe", b"")
    with pytest.raises(InvalidRequestError, match="unreadable PDF"):
        parse("a.pdf", b"not a pdf")
    with pytest.raises(InvalidRequestError, match="invalid JSON"):
        parse("a.json", b"{")


def test_agent_spec_set_operations_become_core_set_ops() -> None:
    with pytest.raises(ValueError, match="undeclared live sources"):
        Retrieval.model_validate({"set_operations": [{"op": "union", "source": "crm"}]})
    spec = Retrieval.model_validate(
        {
            "live_sources": [
                {
                    "name": "crm",
                    "base_url": "http://crm",
                    "path": "/{customer_id}",
                    "entity_key": "id",
                }
            ],
            "set_operations": [{"op": "intersection", "source": "crm"}],
        }
    )
    assert spec_set_ops(spec) == (SetOp(op="intersection", source="crm"),)


def _text_pdf(pages: list[str]) -> bytes:
    """A minimal, valid PDF with one line of text per page (Helvetica), xref offsets computed."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode()
        page_no, content_no = len(objects) + 1, len(objects) + 2
        kids.append(f"{page_no} 0 R")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_no} 0 R "
            "/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> "
            ">> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def test_pdf_pages_become_sections_with_their_text() -> None:
    data = _text_pdf(["Opening hours: Monday to Friday 8 to 6.", "Whitening costs 299 dollars."])
    sections = parse("brochure.pdf", data)
    assert [s.title for s in sections] == ["page 1", "page 2"]
    assert "Monday to Friday" in sections[0].body
    assert "299 dollars" in sections[1].body


async def test_prefer_first_reorders_the_kept_items_and_never_changes_them(
    embedder: HashEmbedder, memory_store: MemoryStore
) -> None:
    await Ingestor(embedder, memory_store).ingest("roaming.md", DOC, ChunkMeta("acme", ("caller",)))
    caller = Caller("acme", "caller", 100)
    memory_store.allow(caller)
    resolver = Resolver(embedder, memory_store)
    plain = await resolver.resolve("roaming switch off", caller, Retrieval(top_k=2))
    assert plain.block is not None
    ids = [item.citation for item in plain.block.items]
    assert len(ids) == 2
    flipped = await resolver.resolve(
        "roaming switch off", caller, Retrieval(top_k=2), prefer_first=[ids[1], ids[0]]
    )
    assert flipped.block is not None
    assert [item.citation for item in flipped.block.items] == [ids[1], ids[0]]
    first, second = (item.text for item in plain.block.items)
    assert flipped.block.text == f"[1] {second}\n[2] {first}"  # renumbered in the new order
    other = await resolver.resolve(
        "roaming switch off", caller, Retrieval(top_k=2), prefer_first=["elsewhere.md#9"]
    )
    assert other.block is not None
    assert other.block.text == plain.block.text  # an item it does not keep changes nothing

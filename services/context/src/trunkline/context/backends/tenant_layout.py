"""How tenants are laid out physically in a Milvus collection (``CONTEXT_TENANT_LAYOUT``).

- ``partition`` (default): one named partition per tenant, selected in every search, query,
  write and delete. A request touches only its tenant's rows, so its cost follows the tenant's
  size, not the collection's (Milvus Lite evaluates a search's filter and dedup per row of every
  partition it scans). A Milvus server allows ``rootCoord.maxPartitionNum`` (1024 by default)
  partitions per collection: beyond that many tenants, use ``partition_key``.
- ``partition_key``: tenant is the partition key; the server hashes tenants into buckets and
  prunes them from the ``tenant == "…"`` expression. Scales to any number of tenants on a
  Milvus server; Milvus Lite does not prune, so each search scans every row.

In both layouts the filter expression still carries tenant, role and validity (defence in depth).
"""

from __future__ import annotations

from typing import Literal

from trunkline.context.core.filters import check_ident

TenantLayout = Literal["partition", "partition_key"]
LAYOUTS: tuple[TenantLayout, ...] = ("partition", "partition_key")

_ESCAPES = {"_": "__", ".": "_d", "-": "_h"}


def tenant_partition(tenant: str) -> str:
    """The partition of ``tenant``: ``t_`` + the id with ``_ . -`` escaped (injective).

    Milvus partition names allow letters, digits and underscores only.
    """
    check_ident("tenant", tenant)
    return "t_" + "".join(_ESCAPES.get(ch, ch) for ch in tenant)

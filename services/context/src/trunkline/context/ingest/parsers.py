"""Documents to sections: PDF (pypdf), Markdown, HTML, plain text, CSV and JSON tickets.

Metadata written inside a document (front matter, a ``tenant`` column) is content, never access
control: tenant, roles and validity come only from the ingest request.
"""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

from pypdf import PdfReader

from trunkline.context.core.chunking import Section
from trunkline.context.errors import InvalidRequestError

KINDS = ("pdf", "markdown", "html", "text", "csv", "json")
_SUFFIX = {
    ".pdf": "pdf", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html",
    ".txt": "text", ".text": "text", ".csv": "csv", ".json": "json",
}  # fmt: skip
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def kind_of(name: str) -> str:
    kind = _SUFFIX.get(PurePath(name).suffix.lower())
    if kind is None:
        raise InvalidRequestError(f"unsupported file type {name!r}; supported: {sorted(_SUFFIX)}")
    return kind


def parse(name: str, data: bytes, kind: str | None = None, entity_field: str = "") -> list[Section]:
    """Sections of a document; ``entity_field`` names the key column of CSV/JSON tickets."""
    kind = kind or kind_of(name)
    if kind == "pdf":
        return parse_pdf(data)
    if kind in ("csv", "json"):
        rows = _csv_rows(data) if kind == "csv" else _json_rows(data)
        return records_to_sections(rows, entity_field)
    text = _decode(data, name)
    if kind == "markdown":
        return parse_markdown(text)
    if kind == "html":
        return parse_html(text)
    if kind == "text":
        return [Section(title="", body=text)]
    raise InvalidRequestError(f"unknown document kind {kind!r}; supported: {KINDS}")


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"{name} is not UTF-8 text: {exc}") from exc


def parse_markdown(text: str) -> list[Section]:
    """One section per heading; the title is the heading path (``Billing > Refunds``)."""
    sections: list[Section] = []
    path: list[str] = []
    body: list[str] = []
    in_code = False

    def flush() -> None:
        content = "\n".join(body).strip()
        if content:
            sections.append(Section(title=" > ".join(path), body=content))
        body.clear()

    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _MD_HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            path[:] = [*path[: level - 1], match.group(2).strip()]
        else:
            body.append(line)
    flush()
    return sections


class _HtmlSections(HTMLParser):
    _HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
    _BLOCKS = ("p", "div", "li", "br", "tr", "section", "article", "table", "ul", "ol")
    _SKIP = ("script", "style", "noscript", "template")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self._path: list[str] = []
        self._body: list[str] = []
        self._heading: list[str] | None = None
        self._level = 0
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._HEADINGS:
            self._flush()
            self._heading, self._level = [], int(tag[1])
        elif tag in self._BLOCKS:
            self._body.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._HEADINGS and self._heading is not None:
            title = " ".join("".join(self._heading).split())
            self._path[:] = [*self._path[: self._level - 1], title]
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        (self._heading if self._heading is not None else self._body).append(data)

    def _flush(self) -> None:
        content = "".join(self._body).strip()
        if content:
            self.sections.append(Section(title=" > ".join(self._path), body=content))
        self._body = []

    def close(self) -> None:
        super().close()
        self._flush()


def parse_html(text: str) -> list[Section]:
    parser = _HtmlSections()
    parser.feed(text)
    parser.close()
    return parser.sections


def parse_pdf(data: bytes) -> list[Section]:
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:
        raise InvalidRequestError(f"unreadable PDF: {exc}") from exc
    return [
        Section(title=f"page {n}", body=text) for n, text in enumerate(pages, 1) if text.strip()
    ]


def _csv_rows(data: bytes) -> list[dict[str, Any]]:
    return list(csv.DictReader(io.StringIO(_decode(data, "csv"))))


def _json_rows(data: bytes) -> list[dict[str, Any]]:
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"invalid JSON: {exc}") from exc
    if isinstance(payload, dict):
        payload = next((v for v in payload.values() if isinstance(v, list)), [payload])
    if not isinstance(payload, list):
        raise InvalidRequestError("JSON tickets must be a list of objects")
    return [row for row in payload if isinstance(row, dict)]


def records_to_sections(rows: list[dict[str, Any]], entity_field: str) -> list[Section]:
    """One section per ticket/record; ``subject``/``title`` becomes the title when present."""
    sections: list[Section] = []
    for n, row in enumerate(rows, 1):
        title = str(row.get("subject") or row.get("title") or f"record {n}")
        entity = str(row.get(entity_field, "")) if entity_field else ""
        body = "\n".join(
            f"{k}: {v}"
            for k, v in row.items()
            if k not in ("subject", "title") and v not in (None, "")
        )
        sections.append(Section(title=title, body=body, entity=entity))
    return sections

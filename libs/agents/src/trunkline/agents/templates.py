"""A tool answer's ``say`` template (``AgentSpec`` tools' ``answers``): its ``{field}`` names.

One reading for the spec's validation and the gateway that fills the template in.
"""

from __future__ import annotations

import string


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names of ``template``, in order (ValueError when it is not a valid
    template, or a placeholder is anything but a plain name: no attribute, index, format spec or
    conversion)."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"placeholder {{{name}}} must be a plain result field name")
        names.append(name)
    return names

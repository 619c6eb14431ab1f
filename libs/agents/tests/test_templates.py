import pytest

from trunkline.agents.templates import template_fields

pytestmark = pytest.mark.unit


def test_fields_in_order() -> None:
    assert template_fields("{name} owes {balance_usd}, {name}") == ["name", "balance_usd", "name"]
    assert template_fields("no fields") == []


@pytest.mark.parametrize("bad", ["{name.first}", "{items[0]}", "{balance:.2f}", "{name!r}", "{}"])
def test_only_plain_names(bad: str) -> None:
    with pytest.raises(ValueError, match="must be a plain result field name"):
        template_fields(bad)


def test_a_broken_template_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Single '\{'"):
        template_fields("{")

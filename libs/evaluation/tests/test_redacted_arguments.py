"""Turn events carry redacted text (issue 13): the eval compares on the redacted form."""

import pytest

from trunkline.evaluation.scoring import _same_value

pytestmark = pytest.mark.unit


def test_an_expected_account_matches_its_placeholder() -> None:
    assert _same_value("441729", "[ACCOUNT]", "account_id")
    assert _same_value("441729", "441729", "account_id")
    assert not _same_value("441729", "[EMAIL]", "account_id")
    assert not _same_value("441729", "502118", "account_id")

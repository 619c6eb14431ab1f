"""``trunkline cost report``: table and CSV over a ledger database, clear errors otherwise."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

from trunkline.cli.main import main as trunkline
from trunkline.ledger.migrate import upgrade
from trunkline.ledger.prices import PriceTable
from trunkline.ledger.store import LedgerStore, make_engine
from trunkline.ledger.synthetic import synthetic_calls

from .conftest import DEMO_START, demo_call

pytestmark = pytest.mark.unit


@pytest.fixture
def run_dir(tmp_path: Path, tables: dict[str, PriceTable]) -> Path:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(engine)
    store = LedgerStore(engine, tables)
    store.sync_prices()
    store.apply(demo_call())
    store.apply(list(synthetic_calls(20, tenant="acme", start=DEMO_START)))
    engine.dispose()
    return tmp_path


def cost(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stopped:
        trunkline(["cost", *args])
    out, err = capsys.readouterr()
    return int(stopped.value.code or 0), out, err


def test_csv_and_table(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    since = ["--tenant", "acme", "--since", "2026-12-01", "--until", "2026-12-05"]
    code, out, _ = cost(["report", *since, "--run-dir", str(run_dir), "--format", "csv"], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["agent"], r["version"]) for r in rows] == [
        ("acme-dental", "1.0.0"), ("acme-dental", "1.1.0"),
    ]  # fmt: skip
    first = rows[0]
    assert int(first["calls"]) == 11  # the demo call and 10 of the 20 synthetic ones
    parts = sum(Decimal(first[c]) for c in ("stt", "llm", "tts", "telephony", "tool"))
    assert Decimal(first["total"]) == parts
    assert Decimal(first["per_call"]) == (parts / Decimal(11)).quantize(Decimal("1e-12"))
    code, out, _ = cost(["report", *since, "--run-dir", str(run_dir)], capsys)
    assert code == 0
    assert out.splitlines()[0].startswith("cost report, tenant acme, 2026-12-01 00:00")
    assert out.splitlines()[-1].split()[:3] == [
        "all",
        "21",
        str(sum(int(r["turns"]) for r in rows)),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "initech", "--since", "7d"],
         "tenant 'initech' is unknown to the ledger (known: acme)"),
        (["--tenant", "acme", "--since", "last tuesday"], "'last tuesday' is not a time"),
    ],
)  # fmt: skip
def test_clear_errors(
    run_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = cost(["report", *args, "--run-dir", str(run_dir)], capsys)
    assert code == 2
    assert message in err


def test_no_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cost(
        ["report", "--tenant", "acme", "--since", "1d", "--run-dir", str(tmp_path)], capsys
    )
    assert code == 2
    assert f"no ledger database at {tmp_path.resolve() / 'ledger.db'}" in err

"""Operations as JSONL: exact round trip, deterministic bytes, edits and floats refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_golden import Golden
from ops_fixtures import demo_rollout, demo_snapshot, tiny_case

from shadowbill.targets.jsonl import OperationsFileError, read_jsonl, write_jsonl
from shadowbill.targets.model import Operation
from shadowbill.targets.operations import build_operations
from shadowbill.translate.run import translate

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def tiny_ops() -> list[Operation]:
    plan, rollout, legacy = tiny_case()
    return build_operations(plan, rollout, legacy, batch_id="tiny")


@pytest.fixture(scope="module")
def demo_ops(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[Operation]]:
    snapshot = demo_snapshot(tmp_path_factory.mktemp("jsonl_demo"))
    rollout = demo_rollout()
    return {
        phase: build_operations(
            translate(snapshot, rollout, phase), rollout, snapshot, batch_id="j"
        )
        for phase in (1, 2, 3)
    }


@pytest.mark.parametrize("phase", [1, 2, 3])
def test_round_trip_is_exact(
    phase: int, demo_ops: dict[int, list[Operation]], tmp_path: Path
) -> None:
    ops = demo_ops[phase]
    path = write_jsonl(ops, tmp_path / "ops.jsonl")
    back = read_jsonl(path)
    assert back == ops
    assert [o.idempotency_key for o in back] == [o.idempotency_key for o in ops]
    again = write_jsonl(back, tmp_path / "again.jsonl")
    assert again.read_bytes() == path.read_bytes()


def test_one_sorted_object_per_line_in_utf8(tiny_ops: list[Operation], tmp_path: Path) -> None:
    path = write_jsonl(tiny_ops, tmp_path / "ops.jsonl")
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw
    lines = raw.decode("utf-8").splitlines()
    assert len(lines) == len(tiny_ops)
    for line, op in zip(lines, tiny_ops, strict=True):
        data = json.loads(line)
        assert data["key"] == op.key
        assert line == json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert "Großhandel".encode() in raw  # not escaped


def test_tiny_batch_matches_golden(
    tiny_ops: list[Operation], tmp_path: Path, golden: Golden
) -> None:
    written = write_jsonl(tiny_ops, tmp_path / "tiny_batch.jsonl")
    golden(GOLDEN / "tiny_batch.jsonl", written.read_bytes())
    assert read_jsonl(GOLDEN / "tiny_batch.jsonl") == tiny_ops


def test_an_edited_line_is_refused(tiny_ops: list[Operation], tmp_path: Path) -> None:
    path = write_jsonl(tiny_ops, tmp_path / "ops.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    data = json.loads(lines[2])
    data["batch_id"] = "another"
    lines[2] = json.dumps(data, sort_keys=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(OperationsFileError, match=r"ops\.jsonl:3: idempotency_key"):
        read_jsonl(path)


def test_floats_are_refused_both_ways(tiny_ops: list[Operation], tmp_path: Path) -> None:
    price = next(o for o in tiny_ops if o.kind == "price")
    floating = Operation(
        batch_id=price.batch_id,
        key=price.key,
        kind=price.kind,
        params={**price.params, "unit_amount": 39.0},
        lookup=price.lookup,
    )
    with pytest.raises(OperationsFileError, match="unit_amount is a float"):
        write_jsonl([floating], tmp_path / "f.jsonl")
    path = write_jsonl([price], tmp_path / "p.jsonl")
    text = path.read_text(encoding="utf-8").replace('"unit_amount":9900', '"unit_amount":99.0')
    assert "99.0" in text
    path.write_text(text, encoding="utf-8")
    with pytest.raises(OperationsFileError, match=r"p\.jsonl:1: not a JSON operation"):
        read_jsonl(path)


def test_duplicates_and_unknown_kinds_are_refused(
    tiny_ops: list[Operation], tmp_path: Path
) -> None:
    path = write_jsonl([tiny_ops[0], tiny_ops[0]], tmp_path / "dup.jsonl")
    with pytest.raises(OperationsFileError, match=r"dup\.jsonl:2: operation .* appears twice"):
        read_jsonl(path)
    line = json.loads(write_jsonl([tiny_ops[0]], tmp_path / "one.jsonl").read_text())
    line["kind"] = "invoice"
    (tmp_path / "kind.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(OperationsFileError, match="unknown kind 'invoice'"):
        read_jsonl(tmp_path / "kind.jsonl")
    assert read_jsonl(write_jsonl([], tmp_path / "empty.jsonl")) == []

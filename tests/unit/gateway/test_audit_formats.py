"""CSV export cells and SSE frames, as clients parse them."""

from __future__ import annotations

import csv
import io
import json

import pytest

from deelrx.audit.v1 import audit_pb2
from gateway.audit_stream import sse_frame
from gateway.routes.audit_routes import CSV_COLUMNS, csv_cell, csv_row


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "=cmd|' /C calc'!A0"])
def test_formula_cells_are_neutralised(value: str) -> None:
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["", "plain", "a=b", "1-2", "usr_01"])
def test_ordinary_cells_are_unchanged(value: str) -> None:
    assert csv_cell(value) == value


def test_a_row_round_trips_through_a_csv_reader_with_no_formula_cell() -> None:
    ev = audit_pb2.AuditEvent(id="evt_1", type="team.updated", outcome="success")
    ev.actor.user_agent = '=HYPERLINK("http://x","y"),\r\nnext'
    ev.details.update({"name": "=evil"})
    line = csv_row(ev)
    rows = list(csv.reader(io.StringIO(line)))
    assert len(rows) == 1 and len(rows[0]) == len(CSV_COLUMNS)
    assert rows[0][CSV_COLUMNS.index("actor_user_agent")] == "'" + ev.actor.user_agent
    assert json.loads(rows[0][CSV_COLUMNS.index("details")]) == {"name": "=evil"}


def test_sse_frame_carries_event_id_and_one_data_line() -> None:
    frame = sse_frame("audit", {"id": "evt_1", "text": "two\nlines"}, "pos1").decode()
    assert frame.endswith("\n\n")
    lines = frame.rstrip("\n").split("\n")
    assert lines[0] == "event: audit" and lines[1] == "id: pos1"
    assert len(lines) == 3 and json.loads(lines[2].removeprefix("data: "))["text"] == "two\nlines"

"""The inbox reads its pages in an index's order (m020, m022): no view of it, tab,
filter or search, sorts a business's leads or reads the table to test a filter, and
the tab counts read an index only. Checked on the query plans SQLite makes."""

from __future__ import annotations

import pytest

from app import leads
from app.db import Database
from tests.support.people import make_business

VIEWS = [dict(), *(dict(status=s) for s in leads.STATUSES), dict(channel="phone"), dict(assigned="me"),
         dict(assigned="none"), dict(assigned="me", status="new", channel="web"), dict(q="helene"),
         dict(q="K7M2PQ4"), dict(q="helene", status="closed"), dict(page=3)]


def plans(db: Database, call) -> list[tuple[str, list[str]]]:
    """Each SELECT that `call` runs, with the lines of its plan."""
    seen: list[tuple[str, object]] = []
    conn = db.reader()
    conn.exec_trace = lambda _cursor, sql, bindings: seen.append((sql, bindings)) or True
    try:
        call()
    finally:
        conn.exec_trace = None
    return [(sql, [r["detail"] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", bindings)])
            for sql, bindings in seen if sql.lstrip().upper().startswith("SELECT")]


@pytest.fixture
def shop(db):
    bid = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)[0]
    with db.write() as conn:
        for i in range(40):
            leads.create(conn, business_id=bid, channel="web" if i % 2 else "phone", actor="test",
                         first_name=f"Hélène {i}", status=leads.STATUSES[i % 5])
        conn.execute("ANALYZE")
    return bid


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: ",".join(f"{k}={v}" for k, v in v.items()) or "first page")
def test_each_view_of_the_inbox_reads_an_index_in_its_order(db, shop, view):
    (sql, plan), = plans(db, lambda: leads.inbox(db, shop, user_id=1, **view))
    assert plan[0].startswith("SEARCH l USING INDEX leads_inbox"), plan
    assert not [line for line in plan if "TEMP B-TREE" in line or line.split()[:2] == ["SCAN", "l"]], plan


def test_the_tab_counts_read_an_index_only(db, shop):
    for assigned in (None, "me", "none"):
        (sql, plan), = plans(db, lambda a=assigned: leads.counts_by_status(db, shop, assigned=a, user_id=1))
        assert plan[0].startswith("SEARCH l USING COVERING INDEX leads_inbox"), plan
        assert plan[1:] in ([], ["USE TEMP B-TREE FOR GROUP BY"]), plan  # five statuses at most
    assert leads.counts_by_status(db, shop) == {s: 8 for s in leads.STATUSES}

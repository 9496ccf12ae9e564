"""Search partitioned by business (m021): each word is indexed glued to its business's
mark, so a prefix query reads only that business's words. The upgrade from m006's
index finds what it found; another business's leads are never found, not even by the
index alone; what the search folds and splits is unchanged; an erased word leaves it."""

from __future__ import annotations

import re
import unicodedata

import pytest

from app import leads, migrations
from app.db import Database
from app.privacy import retention
from tests.support.people import make_business

# Typed in the inbox's search box, each; the leads below are found by some of them.
QUERIES = ["helene", "Hélène", "he\u0301le\u0300ne", "HÉL", "côté", "cote", "514 555-0101", "5550101", "(514)555", "0101", "15145550101",
           "helene@example", "example", "chauffe", "eau", "evier", "l'évier", "souper", "tremb", "jean-pierre",
           "pierre", "zzz", "b1", "b2z", 'fuit* OR "x', "NEAR(a b)", "first_name:marc", "-marc", "^marc", "m",
           "garage", "o'brien", "brien", "wifi", "1er", "2e étage"]

LEADS = [
    dict(first_name="Hélène", last_name="Côté", phone="+15145550101", email="helene@example.com",
         need="Chauffe-eau qui fuit sous l'évier", notes="Rappeler après le souper"),
    dict(first_name="Jean-Pierre", last_name="Tremblay", phone="+14385550102", need="Borne au garage, 2e étage"),
    dict(first_name="Marc", last_name="O’Brien", phone="+15145550199", need="Fuite d’eau (cuisine)…wifi/1er"),
    dict(first_name="Hélèna", last_name=None, phone=None, email="x_y@example.org", need=None),
]


def add(db: Database, bid: int, **fields) -> int:
    notes = fields.pop("notes", None)
    with db.write() as conn:
        lead_id = leads.create(conn, business_id=bid, channel="web", actor="test", **fields)["id"]
        if notes:
            conn.execute("UPDATE leads SET notes = ? WHERE id = ?", (notes, lead_id))
    return lead_id


def found(db: Database, bid: int, q: str) -> list[int]:
    return sorted(r["id"] for r in leads.inbox(db, bid, q=q, per_page=100)[0])


def index_alone(db: Database, bid: int, q: str) -> list[int]:
    """What the index gives for this business's search, without the query's own `business_id = ?`."""
    match = leads.fts_query(q, bid)
    if match is None:
        return []
    return sorted(r["rowid"] for r in db.query("SELECT rowid FROM leads_fts WHERE leads_fts MATCH ?", (match,)))


def businesses_of(db: Database, ids: list[int]) -> set[int]:
    return {r["business_id"] for r in db.query(
        f"SELECT business_id FROM leads WHERE id IN ({', '.join('?' * len(ids))})", ids)} if ids else set()


def words(db: Database) -> set[str]:
    """Every term in the search index."""
    conn = db.reader()
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_words USING fts5vocab(main, leads_fts, 'row')")
    return {r["term"] for r in conn.execute("SELECT term FROM temp.search_words")}


def integrity_check(db: Database) -> None:
    with db.write() as conn:
        conn.execute("INSERT INTO leads_fts(leads_fts) VALUES ('integrity-check')")


@pytest.fixture
def twelve(db):
    """Twelve businesses (ids 1 to 12: 'b1z' must never reach 'b12z'), the same leads in 1 and 12."""
    bids = [make_business(db, f"shop{n}", f"Shop {n}", custom=False)[0] for n in range(1, 13)]
    assert bids == list(range(1, 13))
    mine = [add(db, 1, **lead) for lead in LEADS]
    theirs = [add(db, 12, **lead) for lead in LEADS] + [add(db, 2, first_name="Hélène", need="Chauffe-eau")]
    return mine, theirs


def test_what_the_search_finds(db, twelve):
    mine, _ = twelve
    helene, jean_pierre, marc, helena = mine
    expected = {
        "helene": [helene], "Hélène": [helene], "he\u0301le\u0300ne": [helene], "HÉL": [helene, helena], "côté": [helene], "cote": [helene],
        "514 555-0101": [helene], "5550101": [helene], "(514)555": [helene, marc], "0101": [helene],
        "15145550101": [helene], "helene@example": [helene], "example": [helene, helena], "chauffe": [helene],
        "eau": [helene, marc], "evier": [helene], "l'évier": [helene], "souper": [helene], "tremb": [jean_pierre],
        "jean-pierre": [jean_pierre], "pierre": [jean_pierre], "zzz": [], "b1": [], "b2z": [],
        'fuit* OR "x': [], "NEAR(a b)": [], "first_name:marc": [], "-marc": [marc], "^marc": [marc],
        "m": [marc], "garage": [jean_pierre], "o'brien": [marc], "brien": [marc], "wifi": [marc], "1er": [marc],
        "2e étage": [jean_pierre],
    }
    assert set(expected) == set(QUERIES)
    for q in QUERIES:
        assert found(db, 1, q) == sorted(expected[q]), q
    # The underscore splits words in the index as in the query.
    assert found(db, 1, "x_y") == found(db, 1, "y") == [helena]
    # The reference, typed any way, still finds its lead.
    reference = leads.get(db, 1, marc)["reference"]
    assert found(db, 1, f"# {reference[:3].lower()}-{reference[3:]}") == [marc]


def test_a_prefix_query_reads_only_this_business_s_words(db, twelve):
    mine, theirs = twelve
    for q in QUERIES + ["h", "1", "5", "b12zhel", "z", "e"]:
        for bid, own in ((1, mine), (12, theirs[:-1]), (2, theirs[-1:])):
            got = index_alone(db, bid, q)
            # The index alone (no `business_id = ?`) gives this business's leads, and the inbox the same.
            assert set(got) <= set(own), (q, bid)
            assert found(db, bid, q) == got, (q, bid)
    assert index_alone(db, 1, "h") == sorted([mine[0], mine[3]])
    assert index_alone(db, 12, "hel") == sorted([theirs[0], theirs[3]])
    # Each business's words carry its mark: there is no word without one.
    assert words(db) and all(w.startswith(("b1z", "b2z", "b12z")) for w in words(db))


def test_a_changed_or_erased_lead_leaves_no_word_behind(db, config, twelve):
    mine, _ = twelve
    helene = mine[0]
    leads.rectify(db, 1, helene, {"last_name": "Ginette"}, user_id=None)
    assert found(db, 1, "ginette") == [helene] and found(db, 1, "cote") == []
    assert found(db, 12, "cote") != []  # the same name in another business is untouched
    assert "b1zginette" in words(db) and "b1zcote" not in words(db) and "b12zcote" in words(db)
    assert retention.erase_person(db, config, 1, [helene], actor="user:1") == [helene]
    assert found(db, 1, "ginette") == found(db, 1, "souper") == found(db, 1, "5550101") == []
    gone = {"b1zginette", "b1zcote", "b1zsouper", "b1z5550101", "b1zhelene"}
    assert not gone & words(db)
    integrity_check(db)
    db.close()
    raw = config.db_path.read_bytes() + (config.db_path.with_name("capteo.db-wal").read_bytes()
                                         if config.db_path.with_name("capteo.db-wal").exists() else b"")
    assert b"inette" not in raw


def test_m021_upgrade_finds_what_m006_found(empty_config, monkeypatch):
    """A database with leads made before m021 (m006's index): after the upgrade, every
    search finds the same leads, secure-delete is on and the index checks out."""
    path = empty_config.db_path
    before = [fn for fn in migrations.MIGRATIONS if fn.__name__ != "m021_search_by_business"]
    assert len(before) == len(migrations.MIGRATIONS) - 1
    monkeypatch.setattr(migrations, "MIGRATIONS", before)
    migrations.apply(path)
    db = Database(path)
    for n in range(1, 13):
        make_business(db, f"shop{n}", f"Shop {n}", custom=False)
    ids = {bid: [add(db, bid, **lead) for lead in LEADS] for bid in (1, 2, 12)}

    def old_search(bid, q):
        match = " AND ".join('"' + w.replace('"', '""') + '"*' for w in re.findall(r"\w+", q)[:8])
        if not match:
            return []
        return sorted(r["rowid"] for r in db.query(
            "SELECT l.id AS rowid FROM leads l WHERE l.business_id = ? AND l.id IN"
            " (SELECT rowid FROM leads_fts WHERE leads_fts MATCH ?)", (bid, f"search_tenant:b{bid} AND ({match})")))

    # "b1" found all of business 1's leads in m006's index (its tenant token); no longer. Accents
    # typed as combining marks split the word before; they are composed now (tested above).
    old = {(bid, q): old_search(bid, q) for bid in ids for q in QUERIES if q not in ("b1", "he\u0301le\u0300ne")}
    db.close()
    monkeypatch.undo()
    assert migrations.apply(path) == ["m021_search_by_business"]
    db = Database(path)
    try:
        assert db.query("SELECT 1 AS on_ FROM leads_fts_config WHERE k = 'secure-delete' AND v = 1")
        integrity_check(db)
        for (bid, q), was in old.items():
            assert found(db, bid, q) == was, (bid, q)
            assert businesses_of(db, index_alone(db, bid, q)) <= {bid}, (bid, q)
        assert found(db, 1, "helene") == [ids[1][0]]
        # New leads are indexed by m021's triggers.
        later = add(db, 2, first_name="Ulysse")
        assert found(db, 2, "uly") == [later] and found(db, 1, "uly") == []
    finally:
        db.close()


def test_the_index_reads_the_leads_through_a_view_with_secure_delete_on(db):
    assert "content='leads_search'" in db.one("SELECT sql FROM sqlite_master WHERE name = 'leads_fts'")["sql"]
    assert db.query("SELECT v FROM leads_fts_config WHERE k = 'secure-delete'") == [{"v": 1}]


def test_a_word_after_any_separator_is_found(db):
    """Every character m021 splits on is one the tokenizer splits on too (not a letter or a
    digit), and the word after it is found: "Fuite d’eau", "a/c", "jean@example.com"."""
    bid = make_business(db, "shop", "Shop", custom=False)[0]
    ids = {char: add(db, bid, need=f"Alpha{char}Omegaword{ord(char):05d}") for char in migrations._M021_SEPARATORS}
    for char, lead_id in ids.items():
        assert unicodedata.category(char)[0] not in "LN" and unicodedata.category(char) != "Co", repr(char)
        assert found(db, bid, f"omegaword{ord(char):05d}") == [lead_id], repr(char)
    assert len(found(db, bid, "alpha")) == len(ids)
    integrity_check(db)

"""The dashboard's figures at a glance: weekly counts in the business's time zone,
the median time to first contact, and the server-rendered SVG chart."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from app.leads import glance

SVG = "{http://www.w3.org/2000/svg}"
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # Wednesday 25 Nov, 10:00 in Toronto
_refs = itertools.count(1)


def add_business(db, slug: str, tz: str = "America/Toronto") -> int:
    with db.write() as conn:
        conn.execute(
            "INSERT INTO businesses (slug, name, timezone, created_at) VALUES (?, ?, ?, ?)",
            (slug, slug.title(), tz, "2026-01-01T00:00:00+00:00"),
        )
        return conn.last_insert_rowid()


def add_lead(db, business_id: int, created_at: str, channel: str = "web", status: str = "new",
             first_contact_at: str | None = None) -> int:
    with db.write() as conn:
        conn.execute(
            """INSERT INTO leads (business_id, reference, channel, status, created_at, updated_at,
                                  first_contact_at, first_name)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (business_id, f"T{next(_refs):06d}", channel, status, created_at, created_at,
             first_contact_at, "Test"),
        )
        return conn.last_insert_rowid()


def by_week(rows: list[dict]) -> dict[date, dict]:
    return {r["week_start"]: {c: r[c] for c in ("web", "phone", "chat")} for r in rows}


# --- weekly_counts -------------------------------------------------------------

def test_a_sunday_evening_in_toronto_belongs_to_that_week_not_utc_monday(db):
    biz = add_business(db, "plomberie-gagnon", "America/Toronto")
    add_lead(db, biz, "2026-11-23T03:00:00+00:00", "web")    # Sun 22 Nov 22:00 EST
    add_lead(db, biz, "2026-11-23T05:30:00+00:00", "phone")  # Mon 23 Nov 00:30 EST
    add_lead(db, biz, "2026-11-16T04:59:59+00:00", "chat")   # Sun 15 Nov 23:59:59 EST
    add_lead(db, biz, "2026-11-16T05:00:00+00:00", "chat")   # Mon 16 Nov 00:00 EST, exactly

    weeks = glance.weekly_counts(db, biz, "America/Toronto", NOW, weeks=3)

    assert [w["week_start"] for w in weeks] == [date(2026, 11, 9), date(2026, 11, 16), date(2026, 11, 23)]
    assert by_week(weeks) == {
        date(2026, 11, 9): {"web": 0, "phone": 0, "chat": 1},
        date(2026, 11, 16): {"web": 1, "phone": 0, "chat": 1},
        date(2026, 11, 23): {"web": 0, "phone": 1, "chat": 0},
    }
    # The same instants seen from a business on UTC fall on the other side.
    utc = by_week(glance.weekly_counts(db, biz, "UTC", NOW, weeks=3))
    assert utc[date(2026, 11, 23)] == {"web": 1, "phone": 1, "chat": 0}


def test_week_boundaries_follow_daylight_saving_time(db):
    # DST ends Sunday 1 Nov 2026 in Toronto: Monday 2 Nov starts at 05:00Z (EST), not 04:00Z.
    biz = add_business(db, "toitures-roy")
    add_lead(db, biz, "2026-11-02T04:30:00+00:00")  # Sun 1 Nov 23:30 EST
    add_lead(db, biz, "2026-10-26T04:30:00+00:00")  # Mon 26 Oct 00:30 EDT
    weeks = by_week(glance.weekly_counts(db, biz, "America/Toronto", NOW, weeks=5))
    assert weeks[date(2026, 10, 26)]["web"] == 2
    assert weeks[date(2026, 11, 2)]["web"] == 0


def test_weeks_without_leads_are_present_with_zeros(db):
    biz = add_business(db, "electricite-cote")
    add_lead(db, biz, "2026-10-07T14:00:00+00:00", "phone")

    weeks = glance.weekly_counts(db, biz, "America/Toronto", NOW)

    assert len(weeks) == 12
    starts = [w["week_start"] for w in weeks]
    assert all(d.weekday() == 0 for d in starts)
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [timedelta(days=7)] * 11
    assert starts[-1] == date(2026, 11, 23)  # the week of NOW, last
    assert starts[0] == date(2026, 9, 7)
    nonzero = [w for w in weeks if w["web"] or w["phone"] or w["chat"]]
    assert nonzero == [{"week_start": date(2026, 10, 5), "web": 0, "phone": 1, "chat": 0}]


def test_no_leads_at_all_gives_all_zero_weeks(db):
    biz = add_business(db, "vide")
    weeks = glance.weekly_counts(db, biz, "America/Toronto", NOW, weeks=4)
    assert len(weeks) == 4
    assert all(w["web"] == w["phone"] == w["chat"] == 0 for w in weeks)


def test_leads_outside_the_window_are_not_counted(db):
    biz = add_business(db, "hors-fenetre")
    add_lead(db, biz, "2026-11-09T04:59:59+00:00")  # Sun 8 Nov, before the 3-week window
    add_lead(db, biz, "2026-11-30T05:00:00+00:00")  # Mon 30 Nov, after it
    weeks = glance.weekly_counts(db, biz, "America/Toronto", NOW, weeks=3)
    assert sum(w["web"] for w in weeks) == 0


def test_another_business_leads_are_never_counted(db):
    mine = add_business(db, "a-moi")
    theirs = add_business(db, "a-eux")
    add_lead(db, mine, "2026-11-24T15:00:00+00:00", "web")
    for channel in ("web", "phone", "chat", "chat"):
        add_lead(db, theirs, "2026-11-24T15:00:00+00:00", channel)

    mine_weeks = by_week(glance.weekly_counts(db, mine, "America/Toronto", NOW, weeks=2))
    theirs_weeks = by_week(glance.weekly_counts(db, theirs, "America/Toronto", NOW, weeks=2))

    assert mine_weeks[date(2026, 11, 23)] == {"web": 1, "phone": 0, "chat": 0}
    assert theirs_weeks[date(2026, 11, 23)] == {"web": 1, "phone": 1, "chat": 2}


def test_anonymized_and_archived_leads_still_count(db):
    biz = add_business(db, "loi-25")
    add_lead(db, biz, "2026-11-24T15:00:00+00:00", "web", status="anonymized")
    add_lead(db, biz, "2026-11-24T16:00:00+00:00", "web", status="archived")
    weeks = by_week(glance.weekly_counts(db, biz, "America/Toronto", NOW, weeks=1))
    assert weeks == {date(2026, 11, 23): {"web": 2, "phone": 0, "chat": 0}}


# --- median_first_contact ----------------------------------------------------------

def test_median_first_contact_odd_count(db):
    biz = add_business(db, "impair")
    for minutes in (180, 10, 60):
        created = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
        add_lead(db, biz, created.isoformat(), status="contacted",
                 first_contact_at=(created + timedelta(minutes=minutes)).isoformat())
    add_lead(db, biz, "2026-11-20T15:00:00+00:00")  # never contacted: not in the median
    assert glance.median_first_contact(db, biz) == timedelta(hours=1)


def test_median_first_contact_even_count_is_the_mean_of_the_middle_two(db):
    biz = add_business(db, "pair")
    for minutes in (10, 30, 90, 600):
        created = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
        add_lead(db, biz, created.isoformat(), status="contacted",
                 first_contact_at=(created + timedelta(minutes=minutes)).isoformat())
    assert glance.median_first_contact(db, biz) == timedelta(minutes=60)


def test_median_first_contact_none_without_contacted_leads(db):
    biz = add_business(db, "personne")
    assert glance.median_first_contact(db, biz) is None
    add_lead(db, biz, "2026-11-20T15:00:00+00:00")
    assert glance.median_first_contact(db, biz) is None


def test_median_first_contact_since_and_scoped_by_business(db):
    mine = add_business(db, "mien")
    theirs = add_business(db, "sien")
    add_lead(db, mine, "2026-10-01T12:00:00+00:00", status="contacted",
             first_contact_at="2026-10-03T12:00:00+00:00")  # 2 days, before `since`
    add_lead(db, mine, "2026-11-20T12:00:00+00:00", status="contacted",
             first_contact_at="2026-11-20T12:20:00+00:00")  # 20 minutes
    add_lead(db, theirs, "2026-11-20T12:00:00+00:00", status="contacted",
             first_contact_at="2026-11-20T12:01:00+00:00")

    assert glance.median_first_contact(db, mine) == timedelta(days=1, minutes=10)
    since = datetime(2026, 11, 1, tzinfo=UTC)
    assert glance.median_first_contact(db, mine, since=since) == timedelta(minutes=20)
    assert glance.median_first_contact(db, theirs) == timedelta(minutes=1)
    assert glance.median_first_contact(db, theirs, since=NOW) is None


# --- svg_chart ---------------------------------------------------------------

LABELS = {"web": "Formulaire", "phone": "Téléphone", "chat": "Clavardage"}


def date_label(d: date) -> str:
    return f"{d.day} {['janv.', 'févr.', 'mars', 'avr.', 'mai', 'juin', 'juil.', 'août', 'sept.', 'oct.', 'nov.', 'déc.'][d.month - 1]}"


def sample_weeks() -> list[dict]:
    start = date(2026, 9, 7)
    counts = [(0, 0, 0), (2, 1, 0), (4, 2, 2), (1, 0, 0), (0, 0, 0), (3, 3, 2),
              (5, 0, 1), (2, 2, 0), (0, 1, 0), (1, 1, 1), (6, 1, 0), (1, 0, 0)]
    return [{"week_start": start + timedelta(weeks=i), "web": w, "phone": p, "chat": c}
            for i, (w, p, c) in enumerate(counts)]


def week_stacks(root: ET.Element) -> list[list[ET.Element]]:
    return [g.findall(f"{SVG}rect") for g in root.iter(f"{SVG}g") if g.get("class") == "glance-week"]


def test_svg_is_well_formed_accessible_and_sized():
    svg = glance.svg_chart(sample_weeks(), LABELS, "Demandes par semaine", date_label)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("640", "240", "0 0 640 240")
    assert root[0].tag == f"{SVG}title" and root[0].text == "Demandes par semaine"
    desc = root.find(f"{SVG}desc")
    assert desc is not None
    # The totals per channel: web 25, phone 11, chat 6.
    assert "Formulaire 25" in desc.text and "Téléphone 11" in desc.text and "Clavardage 6" in desc.text
    assert "7 sept." in desc.text and "23 nov." in desc.text
    labelled_by = root.get("aria-labelledby").split()
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    assert set(labelled_by) <= ids
    # No CSS at all: the CSP forbids inline styles.
    assert root.find(f".//{SVG}style") is None
    assert all("style" not in el.attrib for el in root.iter())


def test_svg_stacks_channels_in_order_with_their_colours():
    root = ET.fromstring(glance.svg_chart(sample_weeks(), LABELS, "t", date_label))
    stacks = week_stacks(root)
    assert len(stacks) == 12
    week = stacks[2]  # 4 web, 2 phone, 2 chat
    assert [r.get("fill") for r in week] == ["#0b5d7a", "#7a4fb5", "#b26a00"]
    ys = [float(r.get("y")) for r in week]
    assert ys[0] > ys[1] > ys[2]  # web at the bottom, chat on top
    for lower, upper in zip(week, week[1:], strict=False):
        assert float(upper.get("y")) + float(upper.get("height")) == pytest.approx(float(lower.get("y")), abs=0.02)
    assert stacks[0] == [] and stacks[4] == []  # empty weeks draw no bar


def test_svg_bar_heights_are_proportional_and_the_busiest_week_reaches_the_top():
    weeks = sample_weeks()
    root = ET.fromstring(glance.svg_chart(weeks, LABELS, "t", date_label))
    plot_height = glance.PLOT_BOTTOM - glance.PLOT_TOP
    heights = [sum(float(r.get("height")) for r in stack) for stack in week_stacks(root)]
    totals = [w["web"] + w["phone"] + w["chat"] for w in weeks]
    busiest = max(totals)  # 8, twice
    for height, total in zip(heights, totals, strict=False):
        assert height == pytest.approx(plot_height * total / busiest, abs=0.05)
    tops = [min(float(r.get("y")) for r in stack) for stack in week_stacks(root) if stack]
    assert min(tops) == pytest.approx(glance.PLOT_TOP, abs=0.01)
    for stack in week_stacks(root):
        for r in stack:
            assert float(r.get("y")) + float(r.get("height")) <= glance.PLOT_BOTTOM + 0.01


def test_svg_gridlines_and_x_labels():
    root = ET.fromstring(glance.svg_chart(sample_weeks(), LABELS, "t", date_label))
    groups = {g.get("class"): g for g in root.iter(f"{SVG}g")}
    values = [int(t.text) for t in groups["glance-grid"].findall(f"{SVG}text")]
    assert values[0] == 0 and 3 <= len(values) <= 4  # baseline + round steps: 0, 2, 4, 6, 8 would be 5
    step = values[1]
    assert all(v == i * step for i, v in enumerate(values)) and max(values) <= 8
    x_labels = [t.text for t in groups["glance-x-labels"].findall(f"{SVG}text")]
    assert len(x_labels) == 6
    assert x_labels[-1] == "23 nov."  # the current week is always labelled
    legend = [t.text for t in groups["glance-legend"].findall(f"{SVG}text")]
    assert legend == ["Formulaire", "Téléphone", "Clavardage"]


def test_svg_escapes_every_text():
    labels = {"web": "<b>&", "phone": "Tél. \"direct\"", "chat": "Chat'"}
    svg = glance.svg_chart(sample_weeks(), labels, "Demandes <script>alert(1)</script> & co",
                           lambda d: f"<i>{d.day}</i>")
    assert "<b>" not in svg and "<script>" not in svg and "<i>" not in svg
    root = ET.fromstring(svg)  # still well-formed
    assert root.find(f"{SVG}title").text == "Demandes <script>alert(1)</script> & co"
    legend = [t.text for g in root.iter(f"{SVG}g") if g.get("class") == "glance-legend"
              for t in g.findall(f"{SVG}text")]
    assert legend == ["<b>&", "Tél. \"direct\"", "Chat'"]
    assert "<b>& 25" in root.find(f"{SVG}desc").text
    assert all(el.tag.startswith(SVG) for el in root.iter())  # no element smuggled in
    assert not any(el.tag in (f"{SVG}b", f"{SVG}i", f"{SVG}script") for el in root.iter())


def test_svg_of_all_zero_weeks_draws_no_bar(db):
    biz = add_business(db, "calme")
    weeks = glance.weekly_counts(db, biz, "America/Toronto", NOW)
    root = ET.fromstring(glance.svg_chart(weeks, LABELS, "t", date_label))
    assert all(stack == [] for stack in week_stacks(root))
    assert len(week_stacks(root)) == 12
    assert "Formulaire 0" in root.find(f"{SVG}desc").text


def test_svg_from_the_database_end_to_end(db):
    biz = add_business(db, "bout-en-bout")
    add_lead(db, biz, "2026-11-23T03:00:00+00:00", "web")    # week of 16 Nov
    add_lead(db, biz, "2026-11-24T15:00:00+00:00", "phone")  # week of 23 Nov
    add_lead(db, biz, "2026-11-24T16:00:00+00:00", "phone")
    weeks = glance.weekly_counts(db, biz, "America/Toronto", NOW, weeks=4)
    root = ET.fromstring(glance.svg_chart(weeks, LABELS, "t", date_label))
    stacks = week_stacks(root)
    assert [len(s) for s in stacks] == [0, 0, 1, 1]
    assert float(stacks[3][0].get("height")) == pytest.approx(2 * float(stacks[2][0].get("height")), abs=0.05)
    assert float(stacks[3][0].get("y")) == pytest.approx(glance.PLOT_TOP)

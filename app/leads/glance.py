"""«En un coup d'œil»: the dashboard's figures at a glance.

Requests per week and channel (as a server-rendered SVG chart: no chart library,
no script, readable by a screen reader) and the median time to first contact.
Every query is scoped by the business id.

Timestamps are stored as UTC ISO-8601 text (`clock.now_iso()`: 2026-11-22T14:03:00+00:00),
so a range of instants is a range of strings and the (business_id, created_at)
index answers it. Weeks, however, are the business's: Monday 00:00 in its own
time zone, so the boundaries are computed here (daylight saving time included)
and handed to SQL as UTC strings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from app.db import Database

CHANNELS = ("web", "phone", "chat")
CHANNEL_COLOURS = {"web": "#0b5d7a", "phone": "#7a4fb5", "chat": "#b26a00"}


def _utc_iso(value: datetime) -> str:
    """The stored form of an instant: UTC, seconds, +00:00. A naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _local_midnight_utc(day: date, zone: ZoneInfo) -> str:
    return _utc_iso(datetime.combine(day, time(0), tzinfo=zone))


def week_starts(tz: str, now: datetime, weeks: int = 12) -> list[date]:
    """The Mondays (in the business's time zone) of the last `weeks` weeks, oldest
    first; the last one is the week that contains `now`."""
    if weeks < 1:
        raise ValueError("weeks must be at least 1")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    today = now.astimezone(ZoneInfo(tz)).date()
    this_monday = today - timedelta(days=today.weekday())
    return [this_monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]


def weekly_counts(db: Database, business_id: int, tz: str, now: datetime, weeks: int = 12) -> list[dict]:
    """Requests received per week and channel, for the last `weeks` weeks up to and
    including the week of `now`.

    Oldest first, one dict per week, weeks without any request included:
    `{"week_start": date, "web": n, "phone": n, "chat": n}` where `week_start` is the
    Monday of the week in the business's time zone `tz` (a lead received Sunday 23:00
    in Montréal belongs to that Sunday's week, even though it is Monday in UTC).
    Anonymized leads count: they were requests all the same.
    """
    mondays = week_starts(tz, now, weeks)
    zone = ZoneInfo(tz)
    bounds = [_local_midnight_utc(d, zone) for d in mondays]
    bounds.append(_local_midnight_utc(mondays[-1] + timedelta(weeks=1), zone))

    values = ", ".join("(?, ?, ?)" for _ in mondays)
    params: list = []
    for i in range(len(mondays)):
        params += [i, bounds[i], bounds[i + 1]]
    params.append(business_id)
    rows = db.query(
        f"""WITH weeks(i, start, stop) AS (VALUES {values})
            SELECT weeks.i AS i, leads.channel AS channel, count(*) AS n
            FROM weeks JOIN leads
              ON leads.business_id = ?
             AND leads.created_at >= weeks.start AND leads.created_at < weeks.stop
            GROUP BY weeks.i, leads.channel""",
        params,
    )
    result = [{"week_start": d, **{c: 0 for c in CHANNELS}} for d in mondays]
    for row in rows:
        if row["channel"] in CHANNELS:
            result[row["i"]][row["channel"]] = row["n"]
    return result


def median_first_contact(db: Database, business_id: int, since: datetime | None = None) -> timedelta | None:
    """Median time between a request and its first contact (`first_contact_at - created_at`),
    over this business's leads that have been contacted, optionally only those received
    at or after `since`. None when no lead qualifies. With an even number of leads, the
    mean of the two middle durations."""
    sql = """SELECT created_at, first_contact_at FROM leads
             WHERE business_id = ? AND first_contact_at IS NOT NULL"""
    params: list = [business_id]
    if since is not None:
        sql += " AND created_at >= ?"
        params.append(_utc_iso(since))
    durations = sorted(
        datetime.fromisoformat(r["first_contact_at"]) - datetime.fromisoformat(r["created_at"])
        for r in db.query(sql, params)
    )
    if not durations:
        return None
    middle = len(durations) // 2
    if len(durations) % 2:
        return durations[middle]
    return (durations[middle - 1] + durations[middle]) / 2


# --- The chart ---------------------------------------------------------------

WIDTH, HEIGHT = 640, 240
PLOT_LEFT, PLOT_RIGHT = 44, 632
PLOT_TOP, PLOT_BOTTOM = 34, 212
X_LABEL_Y = 230
LEGEND_Y = 12
FONT = 'font-family="system-ui, sans-serif"'
# 13 user units: the chart shrinks with the screen, and on a phone (where the card scrolls
# sideways rather than shrink it below 36rem) its words stay near 12 px.
FONT_SIZE = 13
CHAR_WIDTH = 7.7  # roughly, per character at FONT_SIZE: spaces the legend's entries
TEXT_COLOUR = "#3d4852"
GRID_COLOUR = "#d5dbe1"
AXIS_COLOUR = "#8795a1"
# Round steps for the y axis, times 10, 100…: integers only (these are counts of requests).
_STEP_MULTIPLES = (1, 2, 2.5, 5)


def grid_step(top: int) -> int:
    """A round integer step (1, 2, 4, 5, 10, 20, 25, 50…) for the y gridlines under `top`:
    3 or 4 lines counting the baseline when such a step exists, otherwise the finest
    step that draws at most 5 (a top of 1 has just 0 and 1)."""
    if top <= 0:
        return 1
    candidates: list[int] = [1, 2, 4, 5]  # 4: so that 8 and 9 get 0, 4, 8
    power = 10
    while candidates[-1] <= top:
        candidates += [int(m * power) for m in _STEP_MULTIPLES]
        power *= 10
    for step in candidates:
        if 2 <= top // step <= 3:
            return step
    for step in candidates:
        if top // step <= 4:
            return step
    return candidates[-1]


def _num(value: float) -> str:
    """A coordinate: at most two decimals, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def svg_chart(
    weeks: list[dict],
    labels: dict[str, str],
    title: str,
    date_label: Callable[[date], str],
    *,
    chart_id: str = "glance-chart",
) -> Markup:
    """Requests per week as an accessible stacked bar chart, an inline SVG string.

    `weeks` is `weekly_counts()`'s list; `labels` maps each channel to its name in the
    page's language (an optional `"total"` entry, e.g. "Total", adds the grand total to
    the description); `date_label(week_start)` gives a week's short label ("17 nov.").
    The SVG has role="img", a <title> and a <desc> summing up the totals per channel, a
    <title> per week (a tooltip), and a legend. The y scale tops at the busiest week, so
    that week's bar reaches the top of the plot. Presentation is in attributes only (no
    <style>, no style=: the CSP forbids them); every text is escaped, so the result is
    returned as Markup, ready for a template. `chart_id` must be unique in the page.
    """
    cid = escape(chart_id)
    n = len(weeks)
    totals_per_week = [sum(int(w.get(c, 0) or 0) for c in CHANNELS) for w in weeks]
    top = max(totals_per_week, default=0)
    scale_top = top or 1
    plot_h = PLOT_BOTTOM - PLOT_TOP
    slot = (PLOT_RIGHT - PLOT_LEFT) / n if n else PLOT_RIGHT - PLOT_LEFT
    bar_w = slot * 0.62

    def y_of(value: float) -> float:
        return PLOT_BOTTOM - value / scale_top * plot_h

    def name(channel: str) -> str:
        return labels.get(channel) or channel

    # Description: the period and the totals per channel, in the caller's words.
    channel_totals = {c: sum(int(w.get(c, 0) or 0) for w in weeks) for c in CHANNELS}
    summary = ", ".join(f"{name(c)} {channel_totals[c]}" for c in CHANNELS)
    if labels.get("total"):
        summary += f" ({labels['total']} {sum(channel_totals.values())})"
    if n:
        period = f"{date_label(weeks[0]['week_start'])} – {date_label(weeks[-1]['week_start'])}"
        summary = f"{period} — {summary}"

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="glance-chart" '
        f'aria-labelledby="{cid}-title {cid}-desc" {FONT} font-size="{FONT_SIZE}">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(summary)}</desc>',
    ]

    # Y gridlines at round values, the baseline (0) in a darker stroke.
    step = grid_step(top)
    out.append('<g class="glance-grid">')
    value = 0
    while value <= top or value == 0:
        y = _num(y_of(value))
        colour = AXIS_COLOUR if value == 0 else GRID_COLOUR
        out.append(
            f'<line x1="{PLOT_LEFT}" x2="{PLOT_RIGHT}" y1="{y}" y2="{y}" stroke="{colour}" '
            f'stroke-width="1" shape-rendering="crispEdges"/>'
        )
        out.append(
            f'<text x="{PLOT_LEFT - 6}" y="{_num(y_of(value) + 5)}" text-anchor="end" '
            f'fill="{TEXT_COLOUR}">{value}</text>'
        )
        value += step
        if top == 0:
            break
    out.append("</g>")

    # One group per week: the channels stacked bottom-up, web first.
    out.append('<g class="glance-bars">')
    for i, week in enumerate(weeks):
        x = PLOT_LEFT + i * slot + (slot - bar_w) / 2
        label = date_label(week["week_start"])
        detail = ", ".join(f"{name(c)} {int(week.get(c, 0) or 0)}" for c in CHANNELS)
        out.append(f'<g class="glance-week"><title>{escape(f"{label} — {detail}")}</title>')
        below = 0
        for channel in CHANNELS:
            count = int(week.get(channel, 0) or 0)
            if count <= 0:
                continue
            y_top, y_bottom = y_of(below + count), y_of(below)
            out.append(
                f'<rect x="{_num(x)}" y="{_num(y_top)}" width="{_num(bar_w)}" '
                f'height="{_num(y_bottom - y_top)}" fill="{CHANNEL_COLOURS[channel]}" '
                f'data-channel="{channel}"/>'
            )
            below += count
        out.append("</g>")
    out.append("</g>")

    # X labels every second week, the current (last) week always labelled.
    out.append('<g class="glance-x-labels">')
    for i, week in enumerate(weeks):
        if (n - 1 - i) % 2:
            continue
        cx = PLOT_LEFT + i * slot + slot / 2
        out.append(
            f'<text x="{_num(cx)}" y="{X_LABEL_Y}" text-anchor="middle" fill="{TEXT_COLOUR}">'
            f'{escape(date_label(week["week_start"]))}</text>'
        )
    out.append("</g>")

    # Legend along the top, in stacking order.
    out.append('<g class="glance-legend">')
    lx = float(PLOT_LEFT)
    for channel in CHANNELS:
        text = name(channel)
        out.append(
            f'<rect x="{_num(lx)}" y="{LEGEND_Y - 9}" width="10" height="10" '
            f'fill="{CHANNEL_COLOURS[channel]}"/>'
        )
        out.append(
            f'<text x="{_num(lx + 14)}" y="{LEGEND_Y}" fill="{TEXT_COLOUR}">{escape(text)}</text>'
        )
        lx += 14 + len(text) * CHAR_WIDTH + 18
    out.append("</g>")

    out.append("</svg>")
    return Markup("".join(out))

"""The dashboard as HTML: each section's figures, its charts, its tables, and a CSV link under each table."""

from __future__ import annotations

import io
import re
from typing import Any

from bot.web.charts import bar_chart, line_chart
from bot.web.html import e, url
from handlers import exports
from handlers.dashboard import Dashboard, Section, Table

FOLDED = 12  # rows shown before a table folds


def dashboard_html(board: Dashboard, *, as_person: str | None) -> str:
    parts = [f"<h1>Alignment at a glance</h1><p class='muted'>As of {board.as_of:%Y-%m-%d %H:%M} UTC.</p>"]
    for section in board.sections:
        parts.append(f"<section id='{e(section.key)}'><h2>{e(section.title)}</h2>")
        if section.key == "pulse":
            parts.append(_filter(board, as_person))
        if section.facts:
            parts.append(
                "<div class='facts'>"
                + "".join(
                    f"<div class='fact'><div class='value'>{e(value)}</div>"
                    f"<div class='label'>{e(label)}</div></div>"
                    for label, value in section.facts
                )
                + "</div>"
            )
        parts.append(_charts(section))
        for table in section.tables:
            parts.append(_table(section.key, table, board, as_person))
        parts.append("</section>")
    return "".join(parts)


def _filter(board: Dashboard, as_person: str | None) -> str:
    options = "<option value=''>Everyone</option>" + "".join(
        f"<option value='{e(key)}'{' selected' if key == board.audience else ''}>{e(label)}</option>"
        for key, label in board.audiences
    )
    keep = f"<input type='hidden' name='as' value='{e(as_person)}'>" if as_person else ""
    return (
        "<form method='get' action='/#pulse' class='compose'>"
        f"{keep}<label for='audience'>Audience</label>"
        f"<select id='audience' name='audience'>{options}</select>"
        "<button type='submit'>Show</button></form>"
    )


def _charts(section: Section) -> str:
    tables = {t.name: t for t in section.tables}
    charts = []
    if (curve := tables.get("acknowledgements-over-time")) and curve.rows:
        days = sorted({row[3] for row in curve.rows})
        series: dict[str, dict[str, float | None]] = {}
        for decision_id, title, audience, day, _, _, rate in curve.rows:
            if audience == "all":  # the chart shows each decision; the table each audience too
                series.setdefault(f"#{decision_id} {title}", {})[day] = rate
        charts.append(
            line_chart(
                "Share of people who acknowledged, by day",
                [d[5:] for d in days],
                [(name, [points.get(d) for d in days]) for name, points in series.items()],
                top=1,
                percent=True,
            )
        )
    if (themes := tables.get("themes")) and themes.rows:
        weeks = [c.removeprefix("week to ")[5:] for c in themes.columns[1:]]
        charts.append(
            line_chart("Objections per theme, week by week", weeks, [(r[0], r[1:]) for r in themes.rows])
        )
    if (index := tables.get("alignment")) and index.rows:
        by_survey: dict[str, list[float | None]] = {}
        for survey, _, _, _, value in index.rows:
            by_survey.setdefault(survey, []).append(value)
        slots = [_day(str(r[2])) for r in index.rows if r[0] == index.rows[0][0]]
        charts.append(line_chart("Alignment index, run by run", slots, list(by_survey.items()), top=100))
    if (questions := tables.get("pulse-questions")) and questions.rows:
        for row in questions.rows:
            if row[7]:
                bars = [(k, int(v)) for k, v in (item.split(":") for item in row[7].split())]
                charts.append(bar_chart(f"{row[2]}", bars))
    if not charts:
        return ""
    return "<div class='charts'>" + "".join(charts) + "</div>"


def _table(section: str, table: Table, board: Dashboard, as_person: str | None) -> str:
    csv_link = url(f"/dashboard/{section}/{table.name}.csv", audience=board.audience, **{"as": as_person})
    head = (
        f"<div class='table-head'><h3>{e(table.title)}</h3>"
        f"<a class='csv' href='{csv_link}' download>Download CSV</a></div>"
    )
    note = f"<p class='note'>{e(table.note)}</p>" if table.note else ""
    if not table.rows:
        return f"{head}{note}<p class='muted'>Nothing yet.</p>"
    header = "".join(f"<th>{e(c.replace('_', ' '))}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(_cell(table.columns[i], value) for i, value in enumerate(row)) + "</tr>"
        for row in table.rows
    )
    shown = f"<table class='data' data-table='{e(table.name)}'><tr>{header}</tr>{body}</table>"
    if len(table.rows) > FOLDED:  # a long table is there to download, and to open when wanted
        shown = f"<details><summary>Show all {len(table.rows)} rows</summary>{shown}</details>"
    return f"{head}{note}{shown}"


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "<td class='number muted'>—</td>"
    if isinstance(value, float):
        shown = f"{value:.0%}" if column in ("rate", "adoption") else f"{value:g}"
        return f"<td class='number'>{e(shown)}</td>"
    if isinstance(value, int):
        return f"<td class='number'>{value}</td>"
    return f"<td>{e(value)}</td>"


def _day(slot: str) -> str:
    """A pulse run's slot ("2026-12-01T10:00", or "now-2026-12-01T09:00" for one sent by hand) as its day."""
    found = re.search(r"\d{4}-\d{2}-\d{2}", slot)
    return found.group(0) if found else slot


def table_csv(table: Table) -> str:
    out = io.StringIO()
    exports.write_csv(out, table.columns, table.rows)
    return out.getvalue()

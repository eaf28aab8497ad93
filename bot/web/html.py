"""The web page's frame: escaping, the layout every page shares, and its stylesheet."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

STYLE = """
:root { --ink:#1d2a22; --muted:#5b6b61; --line:#d9e2dc; --pitch:#2e7d4f; --pitch-light:#e8f3ec;
  --danger:#b3261e; --paper:#fbfcfb; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color:var(--ink);
  background:var(--paper); }
header { display:flex; gap:1.5rem; align-items:center; padding:.7rem 1.2rem; background:var(--pitch);
  color:#fff; }
header a { color:#fff; text-decoration:none; opacity:.85; } header a.here { opacity:1; font-weight:600; }
header .brand { font-weight:700; letter-spacing:.02em; margin-right:1rem; }
header .who { margin-left:auto; opacity:.9; }
main { padding:1rem 1.2rem 3rem; max-width:1200px; margin:0 auto; }
h1 { font-size:1.4rem; margin:.4rem 0 1rem; } h2 { font-size:1.15rem; margin:1.6rem 0 .6rem; }
h3 { font-size:1rem; margin:1rem 0 .4rem; }
.muted, .note { color:var(--muted); font-size:.9rem; }
.grid { display:grid; grid-template-columns: 220px 1fr 360px; gap:1rem; align-items:start; }
.panel { background:#fff; border:1px solid var(--line); border-radius:8px; padding:.8rem; }
nav.channels a { display:block; padding:.25rem .4rem; border-radius:4px; color:var(--ink);
  text-decoration:none; }
nav.channels a.here { background:var(--pitch-light); font-weight:600; }
.card { border:1px solid var(--line); border-left:4px solid var(--pitch); border-radius:6px;
  background:#fff;
  padding:.6rem .8rem; margin:.6rem 0; }
.card .title { font-weight:700; margin-bottom:.3rem; } .card .heading { font-weight:600;
  margin-top:.4rem; }
.card .text { white-space:pre-wrap; } .card dl { margin:.2rem 0; display:grid;
  grid-template-columns:max-content 1fr;
  gap:.1rem .6rem; } .card dt { font-weight:600; } .card dd { margin:0; white-space:pre-wrap; }
.card .footer { color:var(--muted); font-size:.85rem; margin-top:.4rem; }
.card img { max-width:100%; border:1px solid var(--line); border-radius:4px; margin-top:.4rem; }
.meta { color:var(--muted); font-size:.8rem; }
.buttons { display:flex; flex-wrap:wrap; gap:.4rem; margin-top:.5rem; }
.buttons form, .reactions form { display:inline; margin:0; }
button, .button { font:inherit; padding:.3rem .7rem; border:1px solid var(--line); border-radius:5px;
  background:#fff;
  cursor:pointer; color:var(--ink); text-decoration:none; display:inline-block; }
button.primary, .button.primary { background:var(--pitch); border-color:var(--pitch); color:#fff; }
button.danger { color:var(--danger); border-color:var(--danger); }
.reactions button { padding:.1rem .45rem; font-size:.9rem; }
.only-you { border:1px dashed var(--pitch); background:var(--pitch-light); border-radius:6px;
  padding:.6rem .8rem;
  margin-bottom:.8rem; } .only-you .label { font-size:.8rem; color:var(--muted); }
.only-you .text { white-space:pre-wrap; }
form.touchline-form label { display:block; font-weight:600; margin-top:.6rem; }
form.touchline-form .hint { font-weight:400; color:var(--muted); font-size:.85rem; }
form.touchline-form input[type=text], form.touchline-form input[type=url], form.touchline-form
  input[type=date],
form.touchline-form textarea, form.touchline-form select { width:100%; font:inherit; padding:.35rem;
  border:1px solid var(--line); border-radius:4px; }
form.touchline-form .error { color:var(--danger); font-size:.9rem; }
.compose { display:flex; gap:.5rem; margin:.4rem 0 1rem; } .compose input { flex:1; font:inherit;
  padding:.45rem;
  border:1px solid var(--line); border-radius:5px; }
table.data { border-collapse:collapse; width:100%; font-size:.9rem; background:#fff; }
table.data th, table.data td { border-bottom:1px solid var(--line); padding:.3rem .5rem; text-align:left;
  vertical-align:top; } table.data th { background:#f2f6f3; }
table.data td.number { text-align:right; font-variant-numeric: tabular-nums; }
.facts { display:flex; flex-wrap:wrap; gap:.8rem; margin:.4rem 0 .8rem; }
.fact { background:#fff; border:1px solid var(--line); border-radius:8px; padding:.5rem .8rem;
  min-width:150px; }
.fact .value { font-size:1.3rem; font-weight:700; } .fact .label { color:var(--muted); font-size:.85rem; }
.table-head { display:flex; align-items:baseline; gap:1rem; } .table-head a { font-size:.85rem; }
.charts { display:grid; grid-template-columns:repeat(auto-fill, minmax(480px, 1fr)); gap:1rem; }
figure { margin:0; } figcaption { font-weight:600; font-size:.9rem; margin-bottom:.3rem; }
details summary { cursor:pointer; color:var(--muted); font-size:.9rem; margin:.2rem 0; }
svg.chart { width:100%; background:#fff; border:1px solid var(--line); border-radius:6px; max-width:100%;
  height:auto; }
svg.chart text { font:11px system-ui, sans-serif; fill:var(--muted); }
.people a { display:inline-block; margin:.15rem .3rem .15rem 0; }
.message { max-width:640px; margin:3rem auto; }
"""


def e(value: object) -> str:
    """Text from people or the database, safe inside HTML (attributes included)."""
    return escape("" if value is None else str(value), quote=True)


def link(path: str, **query: str | None) -> str:
    """A path with its query (empty values left out)."""
    given = {k: v for k, v in query.items() if v}
    return path + ("?" + urlencode(given) if given else "")


def url(path: str, **query: str | None) -> str:
    """`link`, ready for an HTML attribute."""
    return e(link(path, **query))


def layout(
    title: str, body: str, *, here: str = "", who: str = "", links: tuple[tuple[str, str], ...] = ()
) -> str:
    """A whole page: the bar with the page's links, then `body`."""
    nav = "".join(
        f'<a href="{e(href)}" class="{"here" if href == here else ""}">{e(label)}</a>'
        for label, href in links
    )
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)} · Touchline</title><style>{STYLE}</style></head><body>"
        f"<header><span class='brand'>Touchline</span>{nav}"
        f"{f'<span class=who>{e(who)}</span>' if who else ''}</header>"
        f"<main>{body}</main></body></html>"
    )


def message_page(title: str, text: str, *, action: str = "") -> str:
    """A page that only says something: a refused link, an ended session."""
    return layout(title, f"<div class='message panel'><h1>{e(title)}</h1><p>{e(text)}</p>{action}</div>")

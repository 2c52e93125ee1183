"""`leadrun report`: one self-contained HTML page of a run (pure: a `RunView` in, text out).

No external assets: styles are inline, the funnel is an inline SVG, nothing is fetched when the
page opens. Every value from a lead is HTML-escaped, and only http(s) links become `href`s, so a
lead's name or a stored link cannot inject markup or script into the page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from urllib.parse import urlparse

from common.funnel import Stage, render_svg, stages
from leadrun.views import ACTION_ORDER, LeadRow, RunView


def funnel_stages(view: RunView) -> list[Stage]:
    """The report's funnel rows (common/funnel.py, shared with the Operations page)."""
    return stages(view.counts, view.submitted)


def funnel_svg(view: RunView) -> str:
    """The report's funnel: the same SVG the Operations page shows."""
    return render_svg(view.counts, view.submitted, view.run_id)


def _href(url: str | None) -> str | None:
    """`url` if it is safe to link to (http or https), else None."""
    if not url:
        return None
    parsed = urlparse(url)
    return url if parsed.scheme in ("http", "https") and parsed.netloc else None


def _link(url: str | None, text: str, kind: str) -> str:
    href = _href(url)
    if href is None:
        return ""
    return (
        f'<a class="link link-{kind}" data-link="{kind}" href="{escape(href)}" '
        f'target="_blank" rel="noopener noreferrer">{escape(text)}</a>'
    )


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge badge-{escape(kind)}">{escape(text)}</span>'


_STATUS_KIND = {
    "done": "ok",
    "simulated": "sim",
    "rejected": "bad",
    "failed": "bad",
    "pending": "wait",
    "waiting": "wait",
}


def _action_cell(row: LeadRow, action: str) -> str:
    receipt = row.receipts.get(action)
    if receipt is None:
        return '<td class="muted">—</td>'
    status = str(receipt.get("status"))
    outcome = receipt.get("outcome")
    text = str(outcome or status)
    kind = _STATUS_KIND.get(status, "wait")
    if outcome in ("no_slot", "drafted"):
        kind = "warn"
    detail = ""
    waiting = receipt.get("waiting") if status == "pending" else None
    if waiting:
        # Held back by one of Google's limits: it resumes by itself at `until`.
        text = "waiting"
        until = str(waiting.get("until") or "")
        why = f"{waiting.get('api')} {waiting.get('reason')}"
        detail = f'<div class="detail">{escape(why)} · resumes {escape(_short_time(until))}</div>'

    external = receipt.get("external") or {}
    if action == "calendar" and external.get("start") and outcome == "booked":
        detail = f'<div class="detail">{escape(_short_time(str(external["start"])))}'
        detail += " · expanded</div>" if external.get("expanded") else "</div>"
    return f'<td data-action="{action}">{_badge(text, kind)}{detail}</td>'


def _short_time(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M %z")


def _lead_row(row: LeadRow) -> str:
    who = escape(row.name or "")
    if row.company:
        who += f' <span class="muted">({escape(row.company)})</span>'
    links = " ".join(
        part
        for part in (
            _link(row.links.event, "Event", "event"),
            _link(row.links.meet, "Meet", "meet"),
            _link(row.links.folder, "Folder", "folder"),
        )
        if part
    )
    return (
        f'<tr data-lead="{escape(row.lead_doc_id)}">'
        f'<td><code>{escape(row.lead_doc_id)}</code><div class="detail">{who}</div></td>'
        f'<td class="email">{escape(row.email or "—")}</td>'
        f"<td>{_badge(row.status, _STATUS_KIND.get(row.status, 'wait'))}</td>"
        + "".join(_action_cell(row, a) for a in ACTION_ORDER)
        + f'<td class="reason">{escape(row.reason or "")}</td>'
        f'<td class="links">{links or "<span class=muted>—</span>"}</td></tr>'
    )


def _count_table(title: str, counts: dict[str, int], unit: str, css: str) -> str:
    if not counts:
        return (
            f'<section class="card {css}"><h3>{escape(title)}</h3>'
            f'<p class="muted">none</p></section>'
        )
    rows = "".join(
        f'<tr data-reason="{escape(reason)}"><td><code>{escape(reason)}</code></td>'
        f'<td class="n">{count}</td></tr>'
        for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return (
        f'<section class="card {css}"><h3>{escape(title)}</h3><table class="small">'
        f'<tr><th>reason</th><th class="n">{escape(unit)}</th></tr>{rows}</table></section>'
    )


def _failures(view: RunView) -> str:
    failures = view.failures()
    if not failures:
        return (
            '<section class="card failures"><h3>Failures</h3>'
            '<p class="muted">none: no action failed</p></section>'
        )
    rows = "".join(
        f'<tr data-lead="{escape(lead)}"><td><code>{escape(lead)}</code></td>'
        f"<td>{escape(action)}</td><td><code>{escape(reason)}</code></td>"
        f"<td>{escape(message)}</td></tr>"
        for lead, action, reason, message in failures
    )
    return (
        '<section class="card failures"><h3>Failures</h3><table class="small">'
        "<tr><th>lead</th><th>action</th><th>reason</th><th>error</th></tr>"
        f"{rows}</table></section>"
    )


_STYLE = """
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:#1f2933;background:#f4f6f8}
body{margin:0;padding:24px 32px 48px;max-width:1280px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
h3{font-size:14px;margin:0 0 8px}
.sub{color:#52606d;font-size:13px}
.mode{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600;
 margin-left:8px;vertical-align:middle}
.mode.dry{background:#e3f2fd;color:#1565c0}.mode.live{background:#e8f5e9;color:#2e7d32}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}
.kpi{background:#fff;border-radius:8px;padding:10px 14px;flex:1 1 70px;
 box-shadow:0 1px 2px rgba(0,0,0,.08)}
.kpi .n{font-size:22px;font-weight:700}.kpi .l{font-size:12px;color:#52606d}
.card{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:12px}
.funnel-card{overflow-x:auto}
svg.funnel{font-size:13px}svg .stage-label{font-weight:600;fill:#1f2933}
svg .stage-value{fill:#1f2933}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{font-size:12px;color:#52606d;font-weight:600;background:#fafbfc}
td.n,th.n{text-align:right}
table.leads{background:#fff;border-radius:8px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.muted{color:#9aa5b1}.detail{font-size:11px;color:#52606d;margin-top:2px}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;font-weight:600}
.badge-ok{background:#e8f5e9;color:#2e7d32}.badge-sim{background:#e3f2fd;color:#1565c0}
.badge-warn{background:#fff3e0;color:#b45f00}.badge-bad{background:#ffebee;color:#c62828}
.badge-wait{background:#eceff1;color:#546e7a}
a.link{display:inline-block;margin-right:6px;color:#1565c0;text-decoration:none;font-weight:600}
a.link:hover{text-decoration:underline}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
footer{margin-top:28px;font-size:12px;color:#9aa5b1}
"""


def render_report(view: RunView, generated_at: datetime | None = None) -> str:
    """The whole page."""
    generated = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    c = view.counts
    mode = (
        '<span class="mode dry">dry run: nothing was written to Google</span>'
        if view.dry_run
        else '<span class="mode live">live run</span>'
    )
    kpis = [
        ("submitted", "submitted", view.submitted),
        ("accepted", "accepted", c.get("accepted", 0)),
        ("rejected", "rejected", c.get("rejected", 0)),
        ("booked", "booked", c.get("booked", 0)),
        ("noSlot", "no slot", c.get("noSlot", 0)),
        ("sent", "sent", c.get("sent", 0)),
        ("drafted", "drafted", c.get("drafted", 0)),
        ("foldersCreated", "folders", c.get("foldersCreated", 0)),
        ("failed", "failed", c.get("failed", 0)),
        ("pending", "pending", c.get("pending", 0)),
        ("waiting", "waiting", c.get("waiting", 0)),
    ]
    kpi_html = "".join(
        f'<div class="kpi" data-kpi="{key}"><div class="n">{value}</div>'
        f'<div class="l">{escape(label)}</div></div>'
        for key, label, value in kpis
    )
    # Leads, not receipts (docs/api.md, "Diagnostics"): a lead rejected for no_email counts once,
    # not once per action.
    receipt_reasons = dict(view.reason_leads())
    lead_rows = "".join(_lead_row(row) for row in view.leads) or (
        '<tr><td colspan="9" class="muted">no leads</td></tr>'
    )
    updated = f" · updated {escape(view.updated_at)}" if view.updated_at else ""
    if view.counts.get("waiting"):
        resume = (
            f", resume by {escape(_short_time(view.waiting_until))}" if view.waiting_until else ""
        )
        updated += f" · {view.counts['waiting']} waiting for Google's limits{resume}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lead run {escape(view.run_id)}</title>
<style>{_STYLE}</style></head>
<body>
<header><h1>Lead run <code>{escape(view.run_id)}</code>{mode}</h1>
<div class="sub">{len(view.leads)} leads · generated {generated}{updated}</div></header>
<div class="cards">{kpi_html}</div>
<h2>Funnel</h2>
<section class="card funnel-card">{funnel_svg(view)}</section>
<h2>Why leads did not get through</h2>
<div class="grid">
{_count_table("Rejected at intake (leads)", dict(view.lead_reasons()), "leads", "rejections")}
{_count_table("Filtered by the lead engine", view.filter_reasons, "leads", "filters")}
{_count_table("Receipt reasons (leads, all actions)", receipt_reasons, "leads", "reasons")}
{_failures(view)}
</div>
<h2>Receipts per lead</h2>
<table class="leads"><thead><tr><th>lead</th><th>email</th><th>status</th><th>calendar</th>
<th>email</th><th>drive</th><th>reason</th><th>links</th></tr></thead>
<tbody>{lead_rows}</tbody></table>
<footer>Lead Run Actions · counts from diagnostics, rows from the run's receipts</footer>
</body></html>
"""

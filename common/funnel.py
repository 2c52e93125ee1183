"""The funnel of a lead run as an SVG: the one renderer of `leadrun report` (inline) and of the
Operations page (served as an image by diagnostics, `ops/funnel.svg`).

Pure: counts in, text out. Every text is escaped; the SVG holds no script and no link.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

GREEN, AMBER, BLUE, RED, GREY, TEAL = (
    "#2e7d32",
    "#ef8f00",
    "#1565c0",
    "#c62828",
    "#78909c",
    "#00897b",
)


@dataclass(frozen=True)
class Segment:
    """One coloured part of a funnel bar."""

    key: str  # data-stage / data-count-for
    label: str
    value: int
    colour: str


@dataclass(frozen=True)
class Stage:
    """One row of the funnel: a title and its segments."""

    key: str
    title: str
    segments: tuple[Segment, ...]


def _stage(key: str, title: str, *segments: tuple[str, str, int, str]) -> Stage:
    """A funnel row; each segment is (key, label, value, colour)."""
    return Stage(key, title, tuple(Segment(*segment) for segment in segments))


# The diagnostics counts the funnel draws (besides the leads submitted).
DRAWN = (
    "sourced",
    "filtered",
    "accepted",
    "rejected",
    "booked",
    "noSlot",
    "sent",
    "drafted",
    "foldersCreated",
)


def stages(c: Mapping[str, int], submitted: int) -> list[Stage]:
    """sourced → filtered → accepted → booked / no slot → sent / drafted, with folders."""
    found: list[Stage] = []
    if c.get("sourced", 0) or c.get("filtered", 0):
        found.append(
            _stage("sourced", "Sourced", ("sourced", "sourced", c.get("sourced", 0), GREY))
        )
        found.append(
            _stage(
                "filtered", "Filtered out", ("filtered", "filtered out", c.get("filtered", 0), GREY)
            )
        )
    found += [
        _stage("submitted", "Submitted", ("submitted", "submitted", submitted, GREY)),
        _stage(
            "accepted",
            "Accepted",
            ("accepted", "accepted", c.get("accepted", 0), TEAL),
            ("rejected", "rejected", c.get("rejected", 0), RED),
        ),
        _stage(
            "meetings",
            "Meetings",
            ("booked", "booked", c.get("booked", 0), GREEN),
            ("noSlot", "no slot", c.get("noSlot", 0), AMBER),
        ),
        _stage(
            "emails",
            "Emails",
            ("sent", "sent", c.get("sent", 0), GREEN),
            ("drafted", "drafted", c.get("drafted", 0), BLUE),
        ),
        _stage(
            "folders", "Folders", ("foldersCreated", "created", c.get("foldersCreated", 0), GREEN)
        ),
    ]
    return found


def render_svg(counts: Mapping[str, int], submitted: int, run_id: str) -> str:
    """The funnel as an SVG: one row per stage, bars to a common scale. It carries its own
    type settings, so it looks the same inline (the report) and as an image (the page)."""
    rows = stages(counts, submitted)
    label_w, bar_w, row_h, gap, pad = 130, 520, 30, 14, 10
    value_w = 230
    width = label_w + bar_w + value_w
    height = pad * 2 + len(rows) * (row_h + gap) - gap
    top = max([sum(s.value for s in st.segments) for st in rows] + [1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="funnel" role="img" font-size="13" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" fill="#1f2933" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-label="Funnel of run {escape(run_id)}">'
    ]
    for index, stage in enumerate(rows):
        y = pad + index * (row_h + gap)
        total = sum(s.value for s in stage.segments)
        used = bar_w * total / top
        # Keep the bar centred like a funnel; a zero-width bar still shows a hairline.
        x = label_w + (bar_w - used) / 2
        parts.append(f'<g class="stage" data-stage="{stage.key}">')
        parts.append(
            f'<text x="{label_w - 10}" y="{y + row_h / 2 + 5}" text-anchor="end" '
            f'class="stage-label" font-weight="600">{escape(stage.title)}</text>'
        )
        if total == 0:
            parts.append(
                f'<rect x="{label_w + bar_w / 2 - 1}" y="{y}" width="2" height="{row_h}" '
                f'fill="#cfd8dc"/>'
            )
        for segment in stage.segments:
            w = bar_w * segment.value / top
            if w > 0:
                parts.append(
                    f'<rect class="bar" data-stage="{segment.key}" data-count="{segment.value}" '
                    f'x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h}" rx="4" '
                    f'fill="{segment.colour}"><title>{escape(segment.label)}: '
                    f"{segment.value}</title></rect>"
                )
            x += w
        texts = []
        for segment in stage.segments:
            texts.append(
                f'<tspan data-count-for="{segment.key}" font-weight="700">{segment.value}</tspan>'
                f"<tspan> {escape(segment.label)}</tspan>"
            )
        parts.append(
            f'<text x="{label_w + bar_w + 12}" y="{y + row_h / 2 + 5}" class="stage-value">'
            + '<tspan fill="#90a4ae"> · </tspan>'.join(texts)
            + "</text>"
        )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)

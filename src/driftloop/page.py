"""One self-contained HTML page per model (`driftloop report --out model.html`).

Status, trends, the newest drift and the version timeline on one page that opens offline: the
charts are embedded as PNG bytes, the style is inline, nothing is fetched. It reads results
only (history rows, version references, audit entries); the charts are drawn by ``charts``.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from driftloop.history import DriftValue, RunRecord
from driftloop.promotion import AuditEntry

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.5rem 0} th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f5f5} .bad{color:#b00020;font-weight:600} .ok{color:#1b7f3b} .muted{color:#666} img{max-width:100%;margin:.5rem 0}
.status{display:flex;gap:1rem;flex-wrap:wrap} .status div{border:1px solid #ddd;border-radius:6px;padding:.5rem .8rem;min-width:9rem}
.status b{display:block;font-size:1.2rem}
"""


def _e(value) -> str:
    return html.escape("-" if value is None else str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(path: Path, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def model_page(model: str, runs: Sequence[RunRecord], newest_drift: Sequence[DriftValue], versions: Sequence,
               audit: Sequence[AuditEntry], charts: Sequence[Path], source: str) -> str:
    """The page's HTML. ``versions``: the registry's version references (version, aliases, tags)."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>driftloop: {_e(model)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{_e(model)}</h1><p class='muted'>driftloop model page, written {now} from {_e(source)}. Opens offline.</p>"]
    champion = next((v.version for v in versions if "champion" in v.aliases), None)
    challenger = next((v.version for v in versions if "challenger" in v.aliases), None)
    parts.append("<h2>Status</h2>")
    if runs:
        last = runs[-1]
        decision_class = "ok" if last.decision == "ok" else "bad"
        cards = [("champion", f"v{champion}" if champion else "-"), ("challenger", f"v{challenger}" if challenger else "none waiting"),
                 ("newest batch", last.batch_id), ("decision", f"<span class='{decision_class}'>{_e(last.decision)}</span>"),
                 ("drifted features", f"{last.drift_share:.0%}"),
                 ("label coverage", "-" if last.label_coverage is None else f"{last.label_coverage:.0%}")]
        parts.append("<div class='status'>" + "".join(f"<div>{_e(k)}<b>{v if k == 'decision' else _e(v)}</b></div>" for k, v in cards) + "</div>")
        parts.append("<p>" + ("<br>".join(_e(r) for r in last.reasons) or "No threshold crossed.") + "</p>")
    else:
        parts.append("<p>No monitor run recorded yet: run the monitor flow.</p>")
    if charts:
        parts.append("<h2>Trends</h2>" + "".join(_image(p, p.stem) for p in charts))
    if runs:
        parts.append("<h2>Monitored batches</h2>" + _table(
            ("batch", "version", "validation", "drift", "matured window", "label coverage", "decision", "reasons"),
            [(_e(r.batch_id), _e(r.model_version), _e(r.validation), _e(r.drift_verdict), _e(r.matured_window or "-"),
              _e("-" if r.label_coverage is None else f"{r.label_coverage:.0%}"),
              f"<span class='{'ok' if r.decision == 'ok' else 'bad'}'>{_e(r.decision)}</span>", "<br>".join(_e(x) for x in r.reasons))
             for r in reversed(runs)]))
    if newest_drift:
        parts.append(f"<h2>Newest drift ({_e(runs[-1].batch_id if runs else '')})</h2>" + _table(
            ("family", "column", "test", "p adjusted", "alpha", "distance", "max distance", "drifted", "why"),
            [(_e(d.family), _e(d.column), _e(d.test), _e(f"{d.p_adjusted:.3g}" if d.p_adjusted is not None else None), _e(d.alpha),
              _e(f"{d.distance:.3f}" if d.distance is not None else None), _e(d.max_distance),
              f"<span class='{'bad' if d.drifted else 'ok'}'>{'yes' if d.drifted else 'no'}</span>", _e(d.why))
             for d in sorted(newest_drift, key=lambda d: (not d.drifted, d.family, d.column))]))
    parts.append("<h2>Versions</h2>" + _table(
        ("version", "aliases", "trigger", "data window", "gate", "vs parent"),
        [(_e(f"v{v.version}"), _e(", ".join(v.aliases) or "-"), _e(v.tags.get("driftloop.trigger")), _e(v.tags.get("driftloop.data_window")),
          _e(v.tags.get("driftloop.gate_verdict")), _e(v.tags.get("driftloop.vs_parent"))) for v in reversed(list(versions))]))
    parts.append("<h2>Timeline: registered, promoted, rejected, rolled back</h2>" + (_table(
        ("when (UTC)", "action", "alias", "from", "to", "who", "why"),
        [(_e(a.at), _e(a.action), _e(a.alias), _e(a.from_version), _e(a.to_version), _e(a.who), _e(a.why)) for a in reversed(list(audit))])
        if audit else "<p>No alias has moved yet.</p>"))
    parts.append("</body></html>")
    return "\n".join(parts)

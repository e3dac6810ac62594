"""``report.html``: a self-contained page (no server, no JavaScript, no network access)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["render_report", "line_chart_svg", "bar_chart_svg", "score_curve_svg"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")

#: History keys drawn as extra curves when a method records them.
_EXTRA_CURVES = {
    "label_change": "fraction of labels changed (label updates)",
    "nmi_previous": "NMI between consecutive clusterings",
    "confident_fraction": "fraction of confident samples",
}


def _fmt(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    return f"{value:.2e}"


def line_chart_svg(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    title: str,
    x_label: str = "epoch",
    width: int = 380,
    height: int = 220,
    color: str = _COLORS[0],
) -> str:
    """An inline SVG line chart with min/max tick labels.

    Parameters
    ----------
    xs, ys : sequence of float
        The points, in drawing order; those whose ``y`` is ``None`` or not finite are left
        out.
    title : str
        Shown above the chart and as its accessible label.
    x_label : str, default="epoch"
        Shown below the x axis.
    width, height : int
        Size of the SVG in pixels, margins included (default 380 x 220).
    color : str
        CSS colour of the line and its points.
    """
    points = [(float(x), float(y)) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    left, right, top, bottom = 58, 12, 28, 36
    inner_w, inner_h = width - left - right, height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{width / 2}" y="17" text-anchor="middle" font-size="13">'
        f"{html.escape(title)}</text>",
        f'<rect x="{left}" y="{top}" width="{inner_w}" height="{inner_h}" fill="#fafafa" '
        'stroke="#bbb"/>',
    ]
    if points:
        x_values = [p[0] for p in points]
        y_values = [p[1] for p in points]
        x_min, x_max = min(x_values), max(x_values)
        y_min, y_max = min(y_values), max(y_values)
        if x_max == x_min:
            x_max = x_min + 1
        if y_max == y_min:
            y_min, y_max = y_min - 0.5, y_max + 0.5

        def sx(x):
            return left + (x - x_min) / (x_max - x_min) * inner_w

        def sy(y):
            return top + (1 - (y - y_min) / (y_max - y_min)) * inner_h

        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        if len(points) <= 60:
            parts += [
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{color}"/>'
                for x, y in points
            ]
        parts += [
            f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" font-size="11">'
            f"{_fmt(y_max)}</text>",
            f'<text x="{left - 4}" y="{top + inner_h}" text-anchor="end" font-size="11">'
            f"{_fmt(y_min)}</text>",
            f'<text x="{left}" y="{top + inner_h + 14}" font-size="11">{_fmt(x_min)}</text>',
            f'<text x="{left + inner_w}" y="{top + inner_h + 14}" text-anchor="end" '
            f'font-size="11">{_fmt(x_max)}</text>',
        ]
    else:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="12">'
            "no finite values</text>"
        )
    parts.append(
        f'<text x="{left + inner_w / 2}" y="{height - 6}" text-anchor="middle" '
        f'font-size="11">{html.escape(x_label)}</text></svg>'
    )
    return "".join(parts)


def bar_chart_svg(sizes: Sequence[int], *, width: int = 900, height: int = 240) -> str:
    """An inline SVG bar chart of cluster sizes (one bar per cluster, by id).

    Parameters
    ----------
    sizes : sequence of int
        Samples in each cluster, indexed by cluster id.
    width, height : int
        Size of the SVG in pixels, margins included (default 900 x 240).
    """
    sizes = [int(s) for s in sizes]
    left, right, top, bottom = 50, 10, 12, 34
    inner_w, inner_h = width - left - right, height - top - bottom
    largest = max(max(sizes, default=0), 1)
    n = max(len(sizes), 1)
    step = inner_w / n
    bar = max(step * 0.8, 0.5)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="cluster sizes">',
        f'<line x1="{left}" y1="{top + inner_h}" x2="{left + inner_w}" y2="{top + inner_h}" '
        'stroke="#888"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="11">{largest}</text>',
        f'<text x="{left - 4}" y="{top + inner_h}" text-anchor="end" font-size="11">0</text>',
    ]
    label_every = max(1, math.ceil(n / 40))
    for i, size in enumerate(sizes):
        h = inner_h * size / largest
        x = left + i * step + (step - bar) / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{top + inner_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
            f'fill="{_COLORS[0]}"><title>cluster {i}: {size}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + inner_h + 13}" text-anchor="middle" '
                f'font-size="10">{i}</text>'
            )
    parts.append(
        f'<text x="{left + inner_w / 2}" y="{height - 4}" text-anchor="middle" '
        'font-size="11">cluster</text></svg>'
    )
    return "".join(parts)


def score_curve_svg(
    ks: Sequence[int],
    means: Sequence[float],
    spreads: Sequence[float],
    chosen: int,
    *,
    title: str,
    width: int = 380,
    height: int = 220,
) -> str:
    """An inline SVG of a score against the number of clusters, with its spread and pick.

    Parameters
    ----------
    ks : sequence of int
        The candidate numbers of clusters, increasing; each gets a tick label.
    means, spreads : sequence of float
        The mean score of each candidate and its spread (standard deviation over seeds),
        drawn as a line through the means in a band of one spread either side.
    chosen : int
        The chosen candidate, marked by a dashed vertical line.
    title : str
        Shown above the chart and as its accessible label.
    width, height : int
        Size of the SVG in pixels, margins included (default 380 x 220).

    Returns
    -------
    str
        The ``<svg>`` element.
    """
    left, right, top, bottom = 58, 12, 28, 36
    inner_w, inner_h = width - left - right, height - top - bottom
    lows = [m - s for m, s in zip(means, spreads)]
    highs = [m + s for m, s in zip(means, spreads)]
    x_min, x_max = min(ks), max(ks) if max(ks) > min(ks) else min(ks) + 1
    y_min, y_max = min(lows), max(highs)
    if y_max == y_min:
        y_min, y_max = y_min - 0.5, y_max + 0.5

    def sx(x: float) -> float:
        return left + (x - x_min) / (x_max - x_min) * inner_w

    def sy(y: float) -> float:
        return top + (1 - (y - y_min) / (y_max - y_min)) * inner_h

    band = [f"{sx(k):.1f},{sy(v):.1f}" for k, v in zip(ks, highs)]
    band += [f"{sx(k):.1f},{sy(v):.1f}" for k, v in reversed(list(zip(ks, lows)))]
    line = " ".join(f"{sx(k):.1f},{sy(m):.1f}" for k, m in zip(ks, means))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{width / 2}" y="17" text-anchor="middle" font-size="13">'
        f"{html.escape(title)}</text>",
        f'<rect x="{left}" y="{top}" width="{inner_w}" height="{inner_h}" fill="#fafafa" '
        'stroke="#bbb"/>',
        f'<polygon points="{" ".join(band)}" fill="{_COLORS[0]}" fill-opacity="0.2"/>',
        f'<line x1="{sx(chosen):.1f}" y1="{top}" x2="{sx(chosen):.1f}" y2="{top + inner_h}" '
        'stroke="#777" stroke-dasharray="4 3"/>',
        f'<polyline points="{line}" fill="none" stroke="{_COLORS[0]}" stroke-width="2"/>',
        *(
            f'<circle cx="{sx(k):.1f}" cy="{sy(m):.1f}" r="{3.5 if k == chosen else 2.2}" '
            f'fill="{_COLORS[1] if k == chosen else _COLORS[0]}"/>'
            for k, m in zip(ks, means)
        ),
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" font-size="11">{_fmt(y_max)}</text>',
        f'<text x="{left - 4}" y="{top + inner_h}" text-anchor="end" font-size="11">'
        f"{_fmt(y_min)}</text>",
        *(
            f'<text x="{sx(k):.1f}" y="{top + inner_h + 14}" text-anchor="middle" '
            f'font-size="11">{k}</text>'
            for k in ks
        ),
        f'<text x="{left + inner_w / 2}" y="{height - 6}" text-anchor="middle" '
        f'font-size="11">n_clusters (chosen: {chosen})</text></svg>',
    ]
    return "".join(parts)


def _training_charts(history: Sequence[dict]) -> list[str]:
    stages: dict[str, list[dict]] = {}
    for record in history:
        stages.setdefault(str(record.get("stage", "train")), []).append(record)
    charts = []
    for i, (stage, records) in enumerate(stages.items()):
        epochs = [int(r.get("epoch", j)) + 1 for j, r in enumerate(records)]
        color = _COLORS[i % len(_COLORS)]
        losses = [r.get("loss") for r in records]
        charts.append(line_chart_svg(epochs, losses, title=f"{stage}: loss", color=color))
        for key, title in _EXTRA_CURVES.items():
            values = [r.get(key) for r in records]
            if any(v is not None for v in values):
                charts.append(
                    line_chart_svg(
                        [e for e, v in zip(epochs, values) if v is not None],
                        [v for v in values if v is not None],
                        title=f"{stage}: {title}",
                        color=color,
                    )
                )
    return charts


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto;
       max-width: 1200px; color: #222; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px;
     border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; } td, th { padding: 3px 12px 3px 0; text-align: left;
      vertical-align: top; } th { color: #555; font-weight: 600; }
.charts svg { margin: 0 12px 12px 0; } .montage img { max-width: 100%;
     border: 1px solid #ddd; margin-bottom: 8px; image-rendering: auto; }
table.confusion td, table.confusion th { padding: 3px 8px; text-align: right; }
.note { color: #666; font-size: 13px; } code { background: #f3f3f3; padding: 1px 4px; }
"""


def _metrics_section(metrics: dict | None) -> list[str]:
    """The table of scores against the true labels (nothing when there are none)."""
    if not metrics:
        return []
    esc = html.escape
    header = "".join(f"<th>{esc(k)}</th>" for k in metrics)
    values = "".join(
        f"<td>{v:.4f}</td>" if isinstance(v, float) else f"<td>{esc(str(v))}</td>"
        for v in metrics.values()
    )
    return [
        "<h2>Scores against the true labels</h2>",
        f"<table><tr>{header}</tr><tr>{values}</tr></table>",
        '<p class="note">ACC: accuracy under the best one-to-one matching of clusters to '
        "classes; NMI: normalised mutual information; ARI: adjusted Rand index. The true "
        "labels were not used for training.</p>",
    ]


def _confusion_section(confusion: dict | None) -> list[str]:
    """The matched confusion matrix (clusters by known classes) as a shaded table."""
    if not confusion:
        return []
    esc = html.escape
    header = "".join(f"<th>{esc(name)}</th>" for name in confusion["classes"])
    rows = []
    for cluster, counts in zip(confusion["clusters"], confusion["counts"]):
        total = max(sum(counts), 1)
        cells = "".join(
            f'<td style="background: rgba(31, 119, 180, {count / total:.2f})">{count}</td>'
            for count in counts
        )
        rows.append(f"<tr><th>cluster {cluster}</th>{cells}<td>{sum(counts)}</td></tr>")
    return [
        "<h3>Confusion matrix</h3>",
        f'<table class="confusion"><tr><th></th>{header}<th>total</th></tr>'
        + "".join(rows)
        + "</table>",
        '<p class="note">Clusters (rows) by known class (columns), in the order of the '
        "one-to-one matching used for ACC: the matched pairs lie on the diagonal. Each "
        "cell is shaded by its share of the cluster.</p>",
    ]


def _montage_section(
    montage_pages: Sequence[bytes], n_hidden_clusters: int, by_class: bool = False
) -> list[str]:
    """The cluster montage pages as embedded PNG images, or a note that there are none."""
    if not montage_pages:
        return ['<p class="note">The input has no images (a feature matrix).</p>']
    extra = (
        " Clusters are sorted by purity (the share of their largest known class), purest "
        "first; each image is framed in its known class's colour (legend at the top)."
        if by_class
        else ""
    )
    out = [
        '<p class="note">One row per cluster: its most confident images, best first.'
        f"{extra}</p>"
        '<div class="montage">'
    ]
    for page in montage_pages:
        encoded = base64.b64encode(page).decode("ascii")
        out.append(f'<img alt="cluster montage" src="data:image/png;base64,{encoded}"><br>')
    out.append("</div>")
    if n_hidden_clusters:
        out.append(
            f'<p class="note">{n_hidden_clusters} further clusters are not drawn; see '
            "labels.csv.</p>"
        )
    return out


def _nuisance_section(nuisance: dict | None, pages: Sequence[bytes]) -> list[str]:
    """The nuisance report: statistics ranked, and the clusters sorted by the top one."""
    if not nuisance or not nuisance["scores"]:
        return []
    esc = html.escape
    threshold = nuisance["threshold"]
    rows = "".join(
        f"<tr><td>{esc(s['name'])}</td><td>{s['score']:.3f}</td>"
        f"<td>{'<b>yes</b>' if s['score'] >= threshold else 'no'}</td>"
        f"<td>{esc(s['option'] or 'none: check how the files were collected')}</td></tr>"
        for s in nuisance["scores"]
    )
    out = [
        "<h2>What the clusters follow</h2>",
        '<p class="note">How much of the clustering each cheap image statistic explains '
        "beyond chance, on "
        f"{nuisance['n_samples']} images: 0 means unrelated, 1 that the statistic alone "
        f"decides the cluster. At {threshold:.2f} or above, the clusters may group images by "
        "that property rather than by what they show; if it must not matter, run again "
        "with <code>--invariant-to</code> and the option named.</p>",
        "<table><tr><th>statistic</th><th>score</th><th>flagged</th>"
        f"<th>--invariant-to</th></tr>{rows}</table>",
    ]
    for page in pages:
        encoded = base64.b64encode(page).decode("ascii")
        out.append(
            f'<p class="note">The clusters sorted by {esc(nuisance["scores"][0]["name"])}, '
            "lowest first: a steady run from top to bottom shows the clusters follow it.</p>"
            f'<div class="montage"><img alt="clusters sorted by '
            f'{esc(nuisance["scores"][0]["name"])}" src="data:image/png;base64,{encoded}"></div>'
        )
    return out


def _search_section(search: dict | None) -> list[str]:
    """The ``--n-clusters`` search: a table of the candidates' scores and their curve."""
    if not search:
        return []
    esc = html.escape
    by_k: dict[int, list[dict]] = {}
    for row in search["table"]:
        by_k.setdefault(int(row["n_clusters"]), []).append(row)
    chosen = int(search["best_n_clusters"])
    ks = sorted(by_k)
    means = [float(np.mean([r["score"] for r in by_k[k]])) for k in ks]
    spreads = [float(np.std([r["score"] for r in by_k[k]])) for k in ks]
    votes = search.get("votes") or {}
    rows = "".join(
        f"<tr><td>{'<b>' + str(k) + '</b>' if k == chosen else k}</td><td>{mean:.4f}</td>"
        f"<td>{spread:.4f}</td><td>{len(by_k[k])}</td>"
        f"<td>{np.mean([r['seconds'] for r in by_k[k]]):.1f}</td>"
        + (f"<td>{float(votes[str(k)]):g}</td>" if votes else "")
        + f"<td>{'chosen' if k == chosen else ''}</td></tr>"
        for k, mean, spread in zip(ks, means, spreads)
    )
    scoring = esc(str(search.get("scoring", "score")))
    first = esc(next(iter(search["table"][0].get("scores", {scoring: 0}))))
    if votes:
        voters = esc(", ".join(search["table"][0]["scores"]))
        rule = (
            f"the most points of a vote: each of {voters} ranks the candidates by its "
            "mean over the seeds (1 for the lowest) and a "
            f"candidate's points are the sum of its ranks (on a tie, the higher mean {first}, "
            "then the smallest count)"
        )
    else:
        rule = f"the highest mean {scoring} over the seeds (on a tie, the smallest)"
    return [
        "<h2>Number of clusters</h2>",
        f'<p class="note">Chosen without labels: {chosen} clusters, the candidate with '
        f"{rule}. Shared by the fits: {esc(str(search.get('shared', 'nothing')))} "
        f"({float(search.get('shared_seconds', 0.0)):.1f} s).</p>",
        f"<table><tr><th>candidate</th><th>{first} mean</th><th>spread (std over seeds)"
        f"</th><th>seeds</th><th>fit s (mean)</th>{'<th>points</th>' if votes else ''}"
        f"<th></th></tr>{rows}</table>",
        '<div class="charts">'
        + score_curve_svg(ks, means, spreads, chosen, title=f"{first} by number of clusters")
        + "</div>",
    ]


def _merge_section(merge: dict | None, sizes: np.ndarray) -> list[str]:
    """A fit with ``merge_to``: which trained clusters make up each merged cluster."""
    if not merge:
        return []
    rows = "".join(
        f"<tr><td>{merged}</td><td>{', '.join(str(t) for t in group) or 'none'}</td>"
        f"<td>{len(group)}</td><td>{int(sizes[merged]) if merged < len(sizes) else 0}</td></tr>"
        for merged, group in enumerate(merge["groups"])
    )
    return [
        "<h2>Merged clusters</h2>",
        f'<p class="note">{merge["n_trained"]} clusters were trained, then merged into '
        f"{len(merge['groups'])} by average-linkage agglomeration of their prototypes (the "
        "mean of each cluster's normalised features). Every cluster id elsewhere in this "
        "report and in labels.csv is a merged one.</p>",
        "<table><tr><th>cluster</th><th>trained clusters merged into it</th><th>trained "
        f"clusters</th><th>samples</th></tr>{rows}</table>",
    ]


def _sizes_section(sizes: np.ndarray) -> list[str]:
    """The bar chart of cluster sizes with the largest, smallest and empty counts."""
    n_empty = int(np.sum(np.asarray(sizes) == 0))
    return [
        "<h2>Cluster sizes</h2>",
        bar_chart_svg(sizes),
        f'<p class="note">{len(sizes)} clusters; largest {int(np.max(sizes))}, smallest '
        f"{int(np.min(sizes))}, {n_empty} empty.</p>",
    ]


def render_report(
    *,
    title: str,
    summary: dict,
    metrics: dict | None,
    sizes: np.ndarray,
    history: Sequence[dict],
    montage_pages: Sequence[bytes],
    n_hidden_clusters: int,
    files: Sequence[str],
    nuisance: dict | None = None,
    nuisance_pages: Sequence[bytes] = (),
    confusion: dict | None = None,
    search: dict | None = None,
    merge: dict | None = None,
) -> str:
    """The HTML text of ``report.html``.

    Parameters
    ----------
    title : str
        The page's title and top heading.
    summary : dict
        Shown as a two-column table (source, method, parameters, timings...).
    metrics : dict or None
        Scores against the true labels, when known.
    sizes : ndarray of shape (n_clusters,)
        Samples per cluster, shown as a bar chart with the largest, smallest and empty.
    history : list of dict
        The estimator's ``history_``.
    montage_pages : list of bytes
        PNG pages of the montage, embedded as base64.
    n_hidden_clusters : int
        Clusters the montage leaves out.
    files : list of str
        Output files, linked relatively.
    nuisance : dict, optional
        The fit's nuisance report (:meth:`~deepclust.diagnostics.NuisanceReport.to_dict`).
    nuisance_pages : list of bytes, optional
        PNG montage of the clusters sorted by the report's top statistic.
    confusion : dict, optional
        Known classes only: the matched confusion matrix (``clusters``, ``classes``,
        ``counts``), drawn as a table; the montage is then framed by class and sorted by
        purity.
    search : dict, optional
        The ``--n-clusters`` search (``run.json``'s ``n_clusters_search``: ``table``,
        ``best_n_clusters``, ``scoring``, ``shared``, ``shared_seconds``), drawn as a
        table of the candidates' mean score and spread over seeds, and their curve.
    merge : dict, optional
        A fit with ``merge_to``: ``n_trained`` and ``groups`` (the trained cluster ids of
        each merged cluster), drawn as a table.
    """
    esc = html.escape
    rows = "".join(
        f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in summary.items()
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<table>{rows}</table>",
        *_search_section(search),
        *_merge_section(merge, sizes),
        *_metrics_section(metrics),
        *_confusion_section(confusion),
        "<h2>Clusters</h2>",
        *_montage_section(montage_pages, n_hidden_clusters, by_class=confusion is not None),
        *_nuisance_section(nuisance, nuisance_pages),
        *_sizes_section(sizes),
        "<h2>Training curves</h2>",
        '<div class="charts">',
        *(_training_charts(history) or ['<p class="note">No training history.</p>']),
        "</div>",
        "<h2>Files</h2><ul>",
        *(f'<li><a href="{esc(name)}">{esc(name)}</a></li>' for name in files),
        "</ul>",
        '<p class="note">To name, merge or drop the clusters: <code>deepclust review</code> '
        'on this folder writes <a href="clusters.csv">clusters.csv</a> (a class name per '
        "cluster); <code>deepclust export</code> then writes the images as one folder per "
        "class.</p>",
        "</body></html>",
    ]
    return "\n".join(out)

"""Tabulate the quality and baseline results into ``docs/_bench/quality.rst.inc``.

Run after ``quality.py`` or ``baselines.py`` runs; the docs include the generated file, so
every figure on the benchmarks page comes from a result file.

It reads ``benchmarks/results/quality-*.json`` and ``baseline-*.json``. The runs made with
recipes (result files with a ``recipe`` key) and the baselines are tabulated per data set
(name and number of samples): one row per method (or baseline), budget and K, with the
seeds, the mean and worst-seed scores, the mean and longest fit time and the commits.
Only the newest run (by date, then by the time of the commit it started from, then by
file name) of each method, data set, budget, K and seed counts. Below each table come the
method titles (from the method registry,
:func:`deepclust.methods.registered_methods`), then for each row its resolved settings
(``recipe_['params']``), machine, command, the extras the result files hold (``stages``,
``predict``, ``linear_probe``, the consecutive-assignment NMI) and its result files.

Results without a ``recipe`` key, made with the former per-method benchmark profiles,
are listed in a separate compact table, "Earlier profile runs", never mixed with the
recipe tables.

Usage: python benchmarks/report_quality.py [--results DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # the checkout's deepclust, when not installed

from deepclust.methods import registered_methods  # noqa: E402
from deepclust.recipes import BUDGETS  # noqa: E402

#: The result files read, as glob patterns in the results folder.
PATTERNS = ("quality-*.json", "baseline-*.json")

#: Titles of the baselines of ``benchmarks/baselines.py``, in the order they are listed.
BASELINE_TITLES = {
    "kmeans": "k-means on the raw pixels (scikit-learn ``KMeans``, ``n_init=10``)",
    "umap-gmm": "UMAP to 10 dimensions on the raw pixels, then a Gaussian mixture "
    "(full covariances)",
}

RECIPE_HEADER = [
    "method",
    "budget",
    "K",
    "seeds",
    "ACC mean",
    "ACC worst",
    "NMI mean",
    "NMI worst",
    "ARI mean",
    "s mean",
    "s max",
    "CPU s mean",
    "commit(s)",
]
EARLIER_HEADER = ["method", "data", "profile", "K", "seed", "ACC", "NMI", "s", "date", "commit"]


# --------------------------------------------------------------------------- reading


def load_results(directory: Path) -> list[dict]:
    """Every result file in ``directory``, old key names mapped to the new ones.

    Parameters
    ----------
    directory : pathlib.Path
        The results folder.

    Returns
    -------
    list of dict
        The results, each with its file name in ``file``; files that are not a JSON
        object are skipped with a message.
    """
    results = []
    paths = sorted({p for pattern in PATTERNS for p in directory.glob(pattern)})
    for path in paths:
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            print(f"skipped: {path.name} ({error})")
            continue
        if not isinstance(result, dict):
            print(f"skipped: {path.name} (not a JSON object)")
            continue
        result["file"] = path.name
        results.append(_new_keys(result))
    return results


def _new_keys(result: dict) -> dict:
    """Read files written before ``predict`` and ``linear_probe.feature_source`` existed."""
    if "clusterfit_network" in result and "predict" not in result:
        result["predict"] = result.pop("clusterfit_network")
    probe = result.get("linear_probe") or {}
    for old, new in (("pretrained", "feature_source"), ("clusterfit", "network")):
        if old in probe and new not in probe:
            probe[new] = probe.pop(old)
    return result


def is_baseline(result: dict) -> bool:
    """Whether a result is a run of ``benchmarks/baselines.py``."""
    return result.get("profile") == "baseline" or str(result.get("file", "")).startswith(
        "baseline-"
    )


def is_recipe_run(result: dict) -> bool:
    """Whether a result was made with a recipe (it records the resolved ``recipe``)."""
    return isinstance(result.get("recipe"), dict) and not is_baseline(result)


def data_name(result: dict) -> str:
    """The data set's name (with ``-n{N}`` for a subset), ``?`` when unrecorded."""
    return str(result.get("data_name") or result.get("data") or "?")


def n_clusters(result: dict) -> int | None:
    """The number of clusters K of a run."""
    if result.get("cluster_sizes"):
        return len(result["cluster_sizes"])
    params = result.get("params") or {}
    value = params.get("n_clusters", result.get("n_clusters"))
    return int(value) if isinstance(value, (int, float)) else None


def invariances(result: dict) -> list[str]:
    """The invariances a run declared (``invariant_to``), in the recipe's order; those
    that ``invariant_to='auto'`` added for a second fit do not count."""
    applied = (result.get("recipe") or {}).get("invariances") or {}
    if "first_fit_flagged" in applied:
        return []
    return list(applied.get("declared") or (result.get("params") or {}).get("invariant_to") or [])


def budget(result: dict) -> str:
    """A recipe run's budget and declared invariances, ``-`` for a baseline."""
    if is_baseline(result):
        return "-"
    recipe = result.get("recipe") or {}
    name = str(result.get("budget") or recipe.get("budget") or result.get("profile") or "?")
    declared = invariances(result)
    return f"{name}, invariant to {'+'.join(declared)}" if declared else name


@functools.cache
def commit_time(commit: str | None) -> int:
    """Commit time (seconds since the epoch) of a result's commit, 0 when unknown.

    Parameters
    ----------
    commit : str or None
        A short hash, with ``+dirty`` for uncommitted changes (ignored here).

    Returns
    -------
    int
    """
    if not commit or commit == "unknown":
        return 0
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%ct", commit.split("+")[0]],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 0
    return int(out) if out.isdigit() else 0


def _age(result: dict) -> tuple:
    """Sort key, oldest first: date, commit time, file name."""
    date = str(result.get("date", ""))
    return date, commit_time(result.get("commit")), str(result.get("file", ""))


def newest_runs(results: list[dict]) -> tuple[list[dict], list[dict]]:
    """The newest run of each method, data set, budget, K and seed, and the others.

    Parameters
    ----------
    results : list of dict
        Results of recipe runs and baselines.

    Returns
    -------
    kept, superseded : list of dict
        Both in the order of ``results``.
    """
    kept: dict[tuple, dict] = {}
    for r in sorted(results, key=_age):
        key = (
            r.get("method"),
            data_name(r),
            r.get("n_samples"),
            budget(r),
            n_clusters(r),
            r.get("seed"),
        )
        kept[key] = r
    shown = {id(r) for r in kept.values()}
    return [r for r in results if id(r) in shown], [r for r in results if id(r) not in shown]


# --------------------------------------------------------------------------- formatting


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    rule = "  ".join("=" * w for w in widths)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [rule, fmt.format(*header).rstrip(), rule]
    lines += [fmt.format(*row).rstrip() for row in rows]
    return lines + [rule]


def _num(value, digits: int = 3) -> str:
    if value is None or isinstance(value, str):
        return "-" if value is None else value
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _numbers(values) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not math.isnan(v)]


def _mean(values) -> float | None:
    values = _numbers(values)
    return float(np.mean(values)) if values else None


def _min(values) -> float | None:
    values = _numbers(values)
    return min(values) if values else None


def _max(values) -> float | None:
    values = _numbers(values)
    return max(values) if values else None


def _summary_rows(runs: list[dict], score, cells) -> list[list[str]]:
    """``mean`` and ``worst`` rows for several runs.

    ``score(run)`` ranks the runs (the lowest is the worst seed); ``cells(run)`` gives a
    row's numeric cells, averaged for the mean row.
    """
    if len(runs) < 2:
        return []
    values = [cells(r) for r in runs]
    means = [_mean(column) for column in zip(*values, strict=True)]
    worst = min(runs, key=lambda r: -math.inf if score(r) is None else score(r))
    return [["mean", *means], [f"worst (seed {worst.get('seed')})", *cells(worst)]]


def _by_k(runs: list[dict]) -> dict[int | None, list[dict]]:
    groups: dict[int | None, list[dict]] = {}
    for r in sorted(runs, key=lambda r: (n_clusters(r) or 0, r.get("seed") or 0)):
        groups.setdefault(n_clusters(r), []).append(r)
    return groups


def _value(value) -> str:
    """A parameter value as JSON writes it (``[20, 20]``, ``"strong"``, ``0.001``)."""
    return json.dumps(value, sort_keys=True)


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in params.items())


# --------------------------------------------------------------------------- extras


def stages_table(runs: list[dict]) -> list[str]:
    """The scores of every stage's labels, stage by stage, whenever runs have ``stages``."""
    runs = [r for r in runs if isinstance(r.get("stages"), dict) and r["stages"]]
    if not runs:
        return []
    lines = [
        "Labels after each stage (``stage_labels_``), in the order the estimator lists "
        "them; the last is ``labels_``.",
        "",
    ]
    header = ["stage", "seed", "K", "ACC", "NMI", "ARI"]
    rows = []
    for k, same_k in _by_k(runs).items():
        for stage in dict.fromkeys(s for r in same_k for s in r["stages"]):
            have = [r for r in same_k if stage in r["stages"]]

            def cells(r, stage=stage):
                s = r["stages"][stage] or {}
                return [s.get("acc"), s.get("nmi"), s.get("ari")]

            rows += [[stage, str(r.get("seed")), str(k), *map(_num, cells(r))] for r in have]
            rows += [
                [stage, label, str(k), *map(_num, values)]
                for label, *values in _summary_rows(have, lambda r, c=cells: c(r)[0], cells)
            ]
    lines += _table(header, rows)
    neighbours = [r for r in runs if isinstance(r.get("neighbor_accuracy"), (int, float))]
    if neighbours:
        lines += [
            "",
            "Mined-neighbour accuracy (how often a mined neighbour shares its "
            "anchor's class): "
            + ", ".join(f"seed {r.get('seed')} {r['neighbor_accuracy']:.3f}" for r in neighbours)
            + ".",
        ]
    return lines


PREDICT_COLUMNS = [
    ("predict ACC", lambda r: (r.get("predict") or {}).get("acc"), 3),
    ("predict NMI", lambda r: (r.get("predict") or {}).get("nmi"), 3),
    ("probe: feature source", lambda r: (r.get("linear_probe") or {}).get("feature_source"), 4),
    ("probe: network", lambda r: (r.get("linear_probe") or {}).get("network"), 4),
]


def predict_table(runs: list[dict]) -> list[str]:
    """``predict`` scores and linear-probe accuracy, whenever runs have them."""
    runs = [r for r in runs if r.get("predict") or r.get("linear_probe")]
    if not runs:
        return []
    columns = [c for c in PREDICT_COLUMNS if any(c[1](r) is not None for r in runs)]
    lines = []
    if any(r.get("predict") for r in runs):
        lines.append(
            "``predict(X)`` gives labels other than ``labels_`` here (the trained "
            "network's own clusters); its scores are in the ``predict`` columns."
        )
    probed = [r for r in runs if r.get("linear_probe") and r.get("n_train") and r.get("n_samples")]
    if probed:
        n_train, n_samples = probed[0]["n_train"], probed[0]["n_samples"]
        lines.append(
            "Linear probe: test accuracy of a logistic regression trained on the "
            f"features of the first {n_train:,} images and scored on the other "
            f"{n_samples - n_train:,}, for the feature source "
            "(``pretrained_transform``) and for the trained network (``transform``)."
        )
    lines = [" ".join(lines), ""]

    def cells(r):
        return [get(r) for _, get, _ in columns]

    digits = [d for _, _, d in columns]
    rows = []
    for k, same_k in _by_k(runs).items():
        rows += [[str(r.get("seed")), str(k), *map(_num, cells(r), digits)] for r in same_k]
        rows += [
            [label, str(k), *map(_num, values, digits)]
            for label, *values in _summary_rows(same_k, lambda r: cells(r)[0], cells)
        ]
    return lines + _table(["seed", "K", *(name for name, _, _ in columns)], rows)


def _consecutive_nmi(result: dict) -> list[float]:
    values = result.get("nmi_previous")
    if values is None:
        history = result.get("history") or []
        values = [h.get("nmi_previous") for h in history if isinstance(h, dict)]
    return _numbers(values)


def stability_line(runs: list[dict]) -> list[str]:
    """First and last consecutive-assignment NMI, whenever runs record it."""
    parts = []
    for k, same_k in _by_k(runs).items():
        curves = {r.get("seed"): _consecutive_nmi(r) for r in same_k}
        curves = {seed: c for seed, c in curves.items() if len(c) > 1}
        parts += [f"seed {seed} K={k}: {c[0]:.3f} -> {c[-1]:.3f}" for seed, c in curves.items()]
        if len(curves) > 1:
            last = {seed: c[-1] for seed, c in curves.items()}
            worst = min(last, key=last.get)
            parts.append(
                f"K={k} mean {_mean(c[0] for c in curves.values()):.3f} -> "
                f"{_mean(last.values()):.3f}, lowest last {last[worst]:.3f} "
                f"(seed {worst})"
            )
    if not parts:
        return []
    return [
        "NMI between consecutive assignments (``nmi_previous``: how settled the clustering "
        "is), first and last epochs: " + "; ".join(parts) + "."
    ]


# --------------------------------------------------------------------------- rows


def method_order(results: list[dict], methods: dict) -> list[str]:
    """Registered methods in registration order, then the baselines, then the others."""
    present = {str(r.get("method")) for r in results}
    known = [*methods, *BASELINE_TITLES]
    return [m for m in known if m in present] + sorted(present - set(known))


def row_groups(runs: list[dict], methods: dict) -> list[list[dict]]:
    """The runs of one data set grouped by method, budget and K, in table order."""
    order = {name: i for i, name in enumerate(method_order(runs, methods))}
    budgets = {name: i for i, name in enumerate(BUDGETS)}
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((str(r.get("method")), budget(r), n_clusters(r)), []).append(r)

    def key(item):
        (method, name, k), _ = item
        return order[method], budgets.get(name.split(",")[0], len(budgets)), name, k or 0

    return [
        sorted(group, key=lambda r: r.get("seed") or 0)
        for _, group in sorted(groups.items(), key=key)
    ]


def _commits(runs: list[dict]) -> str:
    return ", ".join(dict.fromkeys(str(r.get("commit") or "-") for r in runs))


def recipe_row(group: list[dict]) -> list[str]:
    """One row of a data set's table: a method (or baseline), budget and K."""
    first = group[0]
    accs = [r.get("acc") for r in group]
    nmis = [r.get("nmi") for r in group]
    seconds = [r.get("seconds") for r in group]
    return [
        str(first.get("method")),
        budget(first),
        str(n_clusters(first) or "-"),
        ", ".join(str(r.get("seed")) for r in group),
        _num(_mean(accs)),
        _num(_min(accs)),
        _num(_mean(nmis)),
        _num(_min(nmis)),
        _num(_mean(r.get("ari") for r in group)),
        _num(_mean(seconds), 0),
        _num(_max(seconds), 0),
        _num(_mean(r.get("cpu_seconds") for r in group), 0),
        _commits(group),
    ]


def title_lines(groups: list[list[dict]], methods: dict) -> list[str]:
    """The titles of the methods and baselines in a table."""
    names = dict.fromkeys(str(g[0].get("method")) for g in groups)
    titles = []
    for name in names:
        if name in methods:
            titles.append(f"``{name}``: {methods[name].method_spec.title}")
        elif name in BASELINE_TITLES:
            titles.append(f"``{name}`` (baseline): {BASELINE_TITLES[name]}")
        else:
            titles.append(f"``{name}``: not a registered method")
    return ["Methods: " + "; ".join(titles) + ".", ""]


# --------------------------------------------------------------------------- details


def _seeds(runs: list[dict]) -> str:
    seeds = sorted({str(r.get("seed")) for r in runs})
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(seeds)


def _when_and_where(runs: list[dict]) -> str:
    dates = sorted({str(r.get("date") or "?") for r in runs})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    machines = dict.fromkeys(str(r.get("machine") or "not recorded") for r in runs)
    if len(machines) == 1:
        return f"{when}, machine: {next(iter(machines))}"
    return (
        when
        + ", machines: "
        + "; ".join(
            f"{m} ({_seeds([r for r in runs if str(r.get('machine') or 'not recorded') == m])})"
            for m in machines
        )
    )


def settings(result: dict) -> tuple[dict, list[str]]:
    """The settings a run used and the names set explicitly over the recipe.

    Parameters
    ----------
    result : dict
        A recipe run (its ``recipe``) or a baseline (its ``params``, less
        ``random_state``, which is the seed).

    Returns
    -------
    params : dict
    set_by_user : list of str
    """
    if is_baseline(result):
        params = {}
        for stage, values in (result.get("params") or {}).items():
            values = values if isinstance(values, dict) else {"": values}
            for name, value in values.items():
                if name != "random_state":
                    params[f"{stage}.{name}" if name else stage] = value
        return params, []
    recipe = result.get("recipe") or {}
    return dict(recipe.get("params") or {}), list(recipe.get("set_by_user") or [])


def settings_lines(runs: list[dict]) -> list[str]:
    """The resolved settings of a group's runs, once when the seeds share them."""
    variants: dict[str, list[dict]] = {}
    for r in runs:
        variants.setdefault(json.dumps(settings(r), sort_keys=True), []).append(r)
    label = "Settings" if is_baseline(runs[0]) else "Settings (``recipe_['params']``)"
    lines = []
    for same in variants.values():
        params, set_by_user = settings(same[0])
        text = f"{label}: ``{_params_text(params)}``" if params else f"{label}: not recorded"
        if set_by_user:
            text += "; set explicitly over the recipe: " + ", ".join(
                f"``{name}``" for name in set_by_user
            )
        if len(variants) > 1:
            text += f" ({_seeds(same)})"
        lines += [text + ".", ""]
    return lines


def _commands(runs: list[dict]) -> list[str]:
    """The recorded command, once when the runs differ only in ``--seed`` and ``--out``."""
    commands = [str(r["command"]) for r in runs if r.get("command")]
    if not commands:
        return []

    def bare(command: str) -> str:
        return re.sub(r"\s--(seed|out)[ =]\S+", "", command)

    if len({bare(c) for c in commands}) == 1:
        note = " (the other runs differ only in ``--seed`` and ``--out``)" if len(runs) > 1 else ""
        return [f"Command{note}::", "", "    " + commands[0], ""]
    return ["Commands::", "", *("    " + c for c in commands), ""]


def group_details(runs: list[dict]) -> list[str]:
    """A table row's details: settings, machine, command, extras and result files."""
    first = runs[0]
    name = str(first.get("method"))
    if not is_baseline(first):
        name += f", budget {budget(first)}"
    lines = [
        f"**{name}, K = {n_clusters(first) or '?'}**: {_seeds(runs)}, {_when_and_where(runs)}.",
        "",
    ]
    lines += settings_lines(runs)
    lines += _commands(runs)
    for extra in (stages_table(runs), predict_table(runs), stability_line(runs)):
        if extra:
            lines += extra + [""]
    files = ", ".join(f"``{r.get('file', '?')}``" for r in runs)
    return lines + [f"Result files: {files}.", ""]


# --------------------------------------------------------------------------- sections


def _heading(title: str, underline: str = "~") -> list[str]:
    return [title, underline * len(title), ""]


def data_set_lines(runs: list[dict], methods: dict) -> list[str]:
    """One data set's section: the table, the titles and every row's details."""
    first = runs[0]
    n_samples = first.get("n_samples")
    size = f" ({n_samples:,} samples)" if isinstance(n_samples, int) else ""
    groups = row_groups(runs, methods)
    lines = _heading(f"{data_name(first)}{size}")
    lines += _table(RECIPE_HEADER, [recipe_row(g) for g in groups]) + [""]
    lines += title_lines(groups, methods)
    for group in groups:
        lines += group_details(group)
    return lines


def recipe_lines(results: list[dict], methods: dict) -> list[str]:
    """The tables of the recipe runs and baselines, one per data set."""
    data_sets: dict[tuple, list[dict]] = {}
    for r in results:
        key = (data_name(r), r.get("n_samples") if isinstance(r.get("n_samples"), int) else -1)
        data_sets.setdefault(key, []).append(r)
    if not data_sets:
        return ["No runs with recipes or baselines yet.", ""]

    def order(key):  # by data set (a subset beside it), then by number of samples
        name, n_samples = key
        return re.sub(r"-n\d+$", "", name), n_samples, name

    lines = []
    for key in sorted(data_sets, key=order):
        lines += data_set_lines(data_sets[key], methods)
    return lines


def earlier_lines(results: list[dict], methods: dict) -> list[str]:
    """The runs of the former benchmark profiles, one compact row each."""
    if not results:
        return []
    order = {name: i for i, name in enumerate(method_order(results, methods))}
    results = sorted(
        results,
        key=lambda r: (
            order[str(r.get("method"))],
            data_name(r),
            str(r.get("profile")),
            n_clusters(r) or 0,
            str(r.get("date")),
            r.get("seed") or 0,
            str(r.get("file", "")),
        ),
    )
    rows = [
        [
            str(r.get("method")),
            data_name(r),
            str(r.get("profile") or "-"),
            str(n_clusters(r) or "-"),
            str(r.get("seed")),
            _num(r.get("acc")),
            _num(r.get("nmi")),
            _num(r.get("seconds"), 0),
            str(r.get("date") or "-"),
            str(r.get("commit") or "-"),
        ]
        for r in results
    ]
    sizes = {data_name(r): r.get("n_samples") for r in results}
    counts = "; ".join(
        f"{name} {n:,}" if isinstance(n, int) else f"{name} not recorded"
        for name, n in sizes.items()
    )
    lines = _heading("Earlier profile runs")
    lines += [
        "Runs made with the former per-method benchmark profiles (fixed parameter sets, "
        "before recipes): every such result file, one row each, for the record. Their "
        "parameters and commands are in the files, which are named after method, data, "
        f"profile, K, seed, date and commit. Samples: {counts}.",
        "",
    ]
    return lines + _table(EARLIER_HEADER, rows) + [""]


def report(results: list[dict], methods: dict) -> list[str]:
    """The whole include file: the recipe tables, then the earlier profile runs.

    Parameters
    ----------
    results : list of dict
        Recipe runs and baselines (the newest of each seed) and earlier profile runs.
    methods : dict
        The registered methods, :func:`deepclust.methods.registered_methods`.

    Returns
    -------
    list of str
        The lines of the reStructuredText include file.
    """
    current = [r for r in results if is_recipe_run(r) or is_baseline(r)]
    earlier = [r for r in results if not (is_recipe_run(r) or is_baseline(r))]
    lines = [
        ".. Generated by benchmarks/report_quality.py from benchmarks/results/quality-*.json "
        "and baseline-*.json; do not edit.",
        "",
    ]
    return (
        lines
        + invariance_lines(current)
        + recipe_lines(current, methods)
        + earlier_lines(earlier, methods)
    )


#: The variants of ``quality.py`` with a known nuisance, and the invariance that removes it.
VARIANT_INVARIANCES = {"-recoloured": ["colour", "background"], "-rotated": ["rotation"]}

INVARIANCE_HEADER = [
    "data set",
    "plain ACC",
    "top statistic",
    "ACC",
    "top statistic",
    "'auto' added",
    "invariant_to",
    "ACC (worst)",
    "top statistic",
    "gap to plain",
    "k-means",
    "UMAP+GMM",
]


def _variant(name: str) -> tuple[str, str] | None:
    """``('digits', '-recoloured')`` for ``'digits-recoloured'`` (or its ``-n`` subset)."""
    match = re.fullmatch(r"(.+?)(-recoloured|-rotated)(-n\d+)?", name)
    return (match.group(1) + (match.group(3) or ""), match.group(2)) if match else None


def _top_statistic(runs: list[dict]) -> str:
    """The statistic most often ranked first in the runs' nuisance reports, and its mean
    score over the runs."""
    tops = [r["nuisance"]["scores"][0] for r in runs if (r.get("nuisance") or {}).get("scores")]
    if not tops:
        return "-"
    names = [t["name"] for t in tops]
    name = max(set(names), key=names.count)
    score = np.mean([t["score"] for t in tops if t["name"] == name])
    return f"{name} {score:.2f}"


def _auto_added(runs: list[dict]) -> str:
    """What ``invariant_to='auto'`` declared for the second fit of the runs (the choice
    of most of them, with their count), ``none`` when no run was fitted again."""
    added = [
        "+".join((r.get("recipe") or {}).get("invariances", {}).get("declared", [])) or "none"
        for r in runs
    ]
    if not added:
        return "-"
    common = max(set(added), key=added.count)
    return f"{common} ({added.count(common)} of {len(added)})"


def _acc(runs: list[dict], worst: bool = False) -> str:
    accs = [r.get("acc") for r in runs]
    if not runs:
        return "-"
    return f"{_num(_mean(accs))} ({_num(_min(accs))})" if worst else _num(_mean(accs))


def invariance_row(name: str, runs: list[dict]) -> list[str] | None:
    """One variant: SCAN's default on the plain original and on the variant, with the
    variant's invariance declared, and the baselines on the variant."""
    plain_name, suffix = _variant(name)
    declared = VARIANT_INVARIANCES[suffix]

    def pick(data: str, method: str, wanted: list[str]):
        return [
            r
            for r in runs
            if data_name(r) == data
            and r.get("method") == method
            and (is_baseline(r) or invariances(r) == wanted)
            and (is_baseline(r) or str(r.get("budget")) == "default")
        ]

    default, invariant = pick(name, "scan", []), pick(name, "scan", declared)
    plain = pick(plain_name, "scan", [])
    if not invariant:
        return None
    gap = (_mean([r["acc"] for r in plain]) or 0) - (_mean([r["acc"] for r in invariant]) or 0)
    return [
        name,
        _acc(plain),
        _top_statistic(plain),
        _acc(default),
        _top_statistic(default),
        _auto_added(default),
        "+".join(declared),
        _acc(invariant, worst=True),
        _top_statistic(invariant),
        _num(gap) if plain else "-",
        _acc(pick(name, "kmeans", [])),
        _acc(pick(name, "umap-gmm", [])),
    ]


def invariance_lines(runs: list[dict]) -> list[str]:
    """The summary table of the variants with a known nuisance (nothing when none ran)."""
    names = sorted({data_name(r) for r in runs if _variant(data_name(r))})
    rows = [row for row in (invariance_row(name, runs) for name in names) if row]
    if not rows:
        return []
    lines = _heading("Declared invariances")
    lines += [
        "SCAN with ``budget='default'`` (mean over the seeds of each data set's table "
        "below; worst seed in brackets): on the plain original, on the variant with the "
        "defaults, and on the variant with ``invariant_to`` declared; after each, the top "
        "statistic of the fits' nuisance reports (the one most often first, its mean "
        "score; ``-`` for runs made before the report existed); what the default "
        "``invariant_to='auto'`` declared for a second fit (``none``: no second fit; "
        "runs before 2026-12-04 had no second fit); the gap between "
        "the plain original and the declared invariance; the baselines on the variant.",
        "",
    ]
    return lines + _table(INVARIANCE_HEADER, rows) + [""]


def main(argv: list[str] | None = None) -> None:
    """Write the include file and say which result files it leaves out.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--out", default=str(ROOT.parent / "docs" / "_bench" / "quality.rst.inc"))
    args = parser.parse_args(argv)
    methods = registered_methods()
    results = load_results(Path(args.results))
    current = [r for r in results if is_recipe_run(r) or is_baseline(r)]
    shown, superseded = newest_runs(current)
    for r in superseded:
        print(f"not shown: {r['file']} (a newer run of seed {r.get('seed')} exists)")
    earlier = [r for r in results if not (is_recipe_run(r) or is_baseline(r))]
    unknown = sorted({str(r.get("method")) for r in results} - set(methods) - set(BASELINE_TITLES))
    if unknown:
        print(f"note: results of unregistered methods, listed last: {unknown}")
    lines = report(shown + earlier, methods)
    while lines and not lines[-1]:
        lines.pop()
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(
        f"wrote {args.out} from {len(shown)} recipe and baseline runs and "
        f"{len(earlier)} earlier profile runs"
    )


if __name__ == "__main__":
    main()

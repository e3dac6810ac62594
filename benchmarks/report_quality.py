"""Tabulate ``benchmarks/results/quality-*.json`` into ``docs/_bench/quality.rst.inc``.

Run after ``quality.py`` runs; the docs include the generated file, so every figure on the
benchmarks page comes from a result file.

The methods, their titles and their current profiles come from the method registry
(:func:`deepclust.methods.registered_methods`). Runs are grouped by data set, profile and
parameters (less ``n_clusters``, ``random_state`` and ``verbose``); a group is *current*
when those parameters equal the method's current profile, and is listed first. Of
identical runs (same parameters and seed) only the newest by date is shown. Extras are
tabulated whenever the result files hold them: ``stages`` (the labels after each stage),
``predict`` and ``linear_probe``, and the consecutive-assignment NMI (``nmi_previous``,
or ``history`` records that carry it).

Usage: python benchmarks/report_quality.py [--results DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # the checkout's deepclust, when not installed

from deepclust.methods import registered_methods  # noqa: E402

#: Parameters that vary between the runs of one recipe (and ``verbose``, which only logs).
RUN_PARAMS = ("n_clusters", "random_state", "verbose")
HEADER = ["seed", "K", "ACC", "NMI", "ARI", "ACC (majority)", "minutes", "max/min size", "commit"]


# --------------------------------------------------------------------------- reading


def load_results(directory: Path) -> list[dict]:
    """Every ``quality-*.json`` in ``directory``, old key names mapped to the new ones."""
    results = []
    for path in sorted(directory.glob("quality-*.json")):
        result = json.loads(path.read_text())
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


def recipe(result: dict) -> dict:
    """A run's parameters less those that differ between the seeds of one recipe."""
    return {k: v for k, v in result["params"].items() if k not in RUN_PARAMS}


def _canonical(params) -> dict:
    """Parameters as JSON stores them (tuples become lists), for comparison."""
    return json.loads(json.dumps(dict(params)))


def current_profile(result: dict, methods: dict) -> dict | None:
    """The registered profile a result names, or None."""
    cls = methods.get(result["method"])
    profile = cls.method_spec.profiles.get(result["profile"]) if cls is not None else None
    return None if profile is None else _canonical(profile)


def newest_of_identical(results: list[dict]) -> tuple[list[dict], list[dict]]:
    """Of runs identical but for when they ran, keep the newest (by date, then file name)."""
    kept: dict[str, dict] = {}
    for r in sorted(results, key=lambda r: (r["date"], r["file"])):
        params = {k: v for k, v in r["params"].items() if k != "verbose"}
        key = json.dumps(
            [r["method"], r["data"], r["n_samples"], r["profile"], r["seed"], params],
            sort_keys=True,
        )
        kept[key] = r
    shown = {id(r) for r in kept.values()}
    return [r for r in results if id(r) in shown], [r for r in results if id(r) not in shown]


# --------------------------------------------------------------------------- formatting


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    rule = "  ".join("=" * w for w in widths)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [rule, fmt.format(*header), rule]
    lines += [fmt.format(*row).rstrip() for row in rows]
    return lines + [rule]


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


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
    return [["mean", *means], [f"worst (seed {worst['seed']})", *cells(worst)]]


def _by_k(runs: list[dict]) -> dict[int, list[dict]]:
    groups: dict[int, list[dict]] = {}
    for r in sorted(runs, key=lambda r: (len(r["cluster_sizes"]), r["seed"])):
        groups.setdefault(len(r["cluster_sizes"]), []).append(r)
    return groups


def _size_ratio(result: dict) -> float:
    sizes = np.asarray(result["cluster_sizes"])
    return float(sizes.max() / sizes.min()) if sizes.min() > 0 else math.inf


def main_table(runs: list[dict]) -> list[str]:
    """Scores, time and cluster sizes of every run, with mean and worst seed per K."""

    def cells(r):
        return [
            r["acc"],
            r["nmi"],
            r["ari"],
            r.get("acc_majority"),
            r["seconds"] / 60,
            _size_ratio(r),
        ]

    digits = [3, 3, 3, 3, 1, 2]
    rows = []
    for k, same_k in _by_k(runs).items():
        for r in same_k:
            rows.append(
                [str(r["seed"]), str(k), *map(_num, cells(r), digits), r.get("commit") or "-"]
            )
        for label, *values in _summary_rows(same_k, lambda r: r["acc"], cells):
            rows.append([label, str(k), *map(_num, values, digits), ""])
    return _table(HEADER, rows)


# --------------------------------------------------------------------------- extras


def stages_table(runs: list[dict]) -> list[str]:
    """The scores of every stage's labels, stage by stage, whenever runs have ``stages``."""
    runs = [r for r in runs if r.get("stages")]
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
                s = r["stages"][stage]
                return [s.get("acc"), s.get("nmi"), s.get("ari")]

            rows += [[stage, str(r["seed"]), str(k), *map(_num, cells(r))] for r in have]
            rows += [
                [stage, label, str(k), *map(_num, values)]
                for label, *values in _summary_rows(have, lambda r, c=cells: c(r)[0], cells)
            ]
    lines += _table(header, rows)
    neighbours = [r for r in runs if r.get("neighbor_accuracy") is not None]
    if neighbours:
        lines += [
            "",
            "Mined-neighbour accuracy (how often a mined neighbour shares its "
            "anchor's class): "
            + ", ".join(f"seed {r['seed']} {r['neighbor_accuracy']:.3f}" for r in neighbours)
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
    probed = [r for r in runs if r.get("linear_probe") and r.get("n_train")]
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
        rows += [[str(r["seed"]), str(k), *map(_num, cells(r), digits)] for r in same_k]
        rows += [
            [label, str(k), *map(_num, values, digits)]
            for label, *values in _summary_rows(same_k, lambda r: cells(r)[0], cells)
        ]
    return lines + _table(["seed", "K", *(name for name, _, _ in columns)], rows)


def _consecutive_nmi(result: dict) -> list[float]:
    values = result.get("nmi_previous")
    if values is None:
        values = [h.get("nmi_previous") for h in result.get("history") or []]
    return [v for v in values if v is not None and not math.isnan(v)]


def stability_line(runs: list[dict]) -> list[str]:
    """First and last consecutive-assignment NMI, whenever runs record it."""
    parts = []
    for k, same_k in _by_k(runs).items():
        curves = {r["seed"]: _consecutive_nmi(r) for r in same_k}
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


# --------------------------------------------------------------------------- groups


def _seeds(runs: list[dict]) -> str:
    seeds = sorted({r["seed"] for r in runs})
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _when_and_where(runs: list[dict]) -> str:
    dates = sorted({r["date"] for r in runs})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    machines = dict.fromkeys(r["machine"] for r in runs)
    if len(machines) == 1:
        return f"{when}, machine: {next(iter(machines))}"
    return (
        when
        + ", machines: "
        + "; ".join(f"{m} ({_seeds([r for r in runs if r['machine'] == m])})" for m in machines)
    )


def _differences(params: dict, profile: dict | None, name: str) -> str:
    if profile is None:
        return f"parameters of their own (no ``{name}`` profile is registered)"
    diffs = []
    for key in dict.fromkeys([*profile, *params]):
        if key not in params:
            diffs.append(f"``{key}`` unset (profile: {profile[key]!r})")
        elif key not in profile:
            diffs.append(f"``{key}={params[key]!r}`` (not in the profile)")
        elif params[key] != profile[key]:
            diffs.append(f"``{key}={params[key]!r}`` (profile: {profile[key]!r})")
    return f"the ``{name}`` profile with " + ", ".join(diffs)


def _commands(runs: list[dict]) -> list[str]:
    """The recorded command, once when the runs differ only in ``--seed`` and ``--out``."""

    def bare(command: str) -> str:
        return re.sub(r"\s--(seed|out)[ =]\S+", "", command)

    if len({bare(r["command"]) for r in runs}) == 1:
        note = " (the other runs differ only in ``--seed`` and ``--out``)" if len(runs) > 1 else ""
        return [f"Command{note}::", "", "    " + runs[0]["command"], ""]
    return ["Commands::", "", *("    " + r["command"] for r in runs), ""]


def group_lines(runs: list[dict], profile: dict | None) -> list[str]:
    """One group of runs with the same recipe: description, command, tables."""
    first = runs[0]
    params = recipe(first)
    sizes = sorted({len(r["cluster_sizes"]) for r in runs})
    what = f"{first['data']} ({first['n_samples']:,} images), {_seeds(runs)}, K = " + " and ".join(
        map(str, sizes)
    )
    if profile == params:
        lead = f"**Current profile** ``{first['profile']}``: {what}"
    else:
        lead = f"**Runs with other parameters**: {what}; " + _differences(
            params, profile, first["profile"]
        )
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
    lines = [f"{lead}; run on {_when_and_where(runs)}. Parameters: ``{shown}``.", ""]
    lines += _commands(runs)
    lines += main_table(runs) + [""]
    for extra in (stages_table(runs), predict_table(runs), stability_line(runs)):
        if extra:
            lines += extra + [""]
    files = ", ".join(f"``{r['file']}``" for r in runs)
    return lines + [f"Result files: {files}.", ""]


def method_lines(title: str, runs: list[dict], methods: dict) -> list[str]:
    """A method's section: its current profiles' runs first, then the other recipes."""
    groups: dict[str, list[dict]] = {}
    for r in runs:
        key = json.dumps([r["data"], r["n_samples"], r["profile"], recipe(r)], sort_keys=True)
        groups.setdefault(key, []).append(r)

    def order(group):
        current = current_profile(group[0], methods) == recipe(group[0])
        return (
            not current,
            -len(group),
            [-int(d) for d in group[0]["date"].split("-")],
            group[0]["file"],
        )

    lines = [title, "~" * len(title), ""]
    for group in sorted(groups.values(), key=order):
        group.sort(key=lambda r: (len(r["cluster_sizes"]), r["seed"]))
        lines += group_lines(group, current_profile(group[0], methods))
    return lines


def report(results: list[dict], methods: dict) -> list[str]:
    """The whole include file: one section per method, registered ones in their order."""
    lines = [
        ".. Generated by benchmarks/report_quality.py from "
        "benchmarks/results/quality-*.json; do not edit.",
        "",
    ]
    names = [*methods, *sorted({r["method"] for r in results} - set(methods))]
    for name in names:
        runs = [r for r in results if r["method"] == name]
        if runs:
            title = methods[name].method_spec.title if name in methods else name
            lines += method_lines(title, runs, methods)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--out", default=str(ROOT.parent / "docs" / "_bench" / "quality.rst.inc"))
    args = parser.parse_args(argv)
    methods = registered_methods()
    results, superseded = newest_of_identical(load_results(Path(args.results)))
    for r in superseded:
        print(f"not shown: {r['file']} (a newer identical run of seed {r['seed']} exists)")
    unknown = sorted({r["method"] for r in results} - set(methods))
    if unknown:
        print(f"note: results of unregistered methods, listed last: {unknown}")
    lines = report(results, methods)
    while lines and not lines[-1]:
        lines.pop()
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} from {len(results)} result files")


if __name__ == "__main__":
    main()

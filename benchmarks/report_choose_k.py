"""Tabulate the choose-K results into ``docs/_bench/choose_k.rst.inc``.

Run after ``benchmarks/choose_k.py`` runs; ``docs/benchmarks.rst`` includes the generated
file ("Choosing the number of clusters"), so every figure there comes from a result file.

It reads ``benchmarks/results/choose-k-*.json``; only the newest run (by date, then by the
time of the commit it started from, then by file name) of each method, data set, budget,
K and seed counts. It writes a summary per data set (the picks of every seed, how many
are exact and within one candidate step, the cost of the sweep against one default fit)
and a table per run (the candidates, the default score of each with the pick in bold,
GridSearchCV's pick when the run made one (``--grid-search``), what the two other
label-free scores would have picked, the times), then the machines,
dates, commits and commands of the runs.

Usage: python benchmarks/report_choose_k.py [--results DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from report_quality import _num, _table, newest_runs  # noqa: E402

#: The result files read, as a glob pattern in the results folder.
PATTERN = "choose-k-*.json"

SUMMARY_HEADER = [
    "data set",
    "N",
    "true K",
    "candidates",
    "seeds",
    "chosen K (by seed)",
    "exact",
    "within 1 step",
    "cost ratio mean",
    "cost ratio max",
    "CPU ratio mean",
    "CPU ratio max",
]
RUN_HEADER = [
    "data set",
    "seed",
    "silhouette by candidate",
    "silhouette pick",
    "agreement pick",
    "linear pick",
    "chosen (vote)",
    "GridSearchCV pick",
    "ACC at chosen",
    "ACC at true K",
    "sweep s",
    "fit s",
    "ratio",
    "CPU ratio",
]


def load_results(directory: Path) -> list[dict]:
    """Every choose-K result file in ``directory``, each with its file name in ``file``.

    Parameters
    ----------
    directory : pathlib.Path
        The results folder.

    Returns
    -------
    list of dict
        Files that are not a JSON object are skipped with a message.
    """
    results = []
    for path in sorted(directory.glob(PATTERN)):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            print(f"skipped: {path.name} ({error})")
            continue
        if not isinstance(result, dict):
            print(f"skipped: {path.name} (not a JSON object)")
            continue
        result["file"] = path.name
        results.append(result)
    return results


def _label(result: dict) -> str:
    """The data set's name, with its declared invariances."""
    name = str(result.get("data_name") or result.get("data"))
    profile = str(result.get("profile", ""))
    return name + (f" ({profile.split('-inv-', 1)[1]} inv.)" if "-inv-" in profile else "")


#: The selection rules compared, by the scores each reads from a result (``scores`` is the
#: silhouette, the others are ``other_scores``).
RULES = {
    "silhouette (the estimators' score)": ("scores",),
    "augmentation agreement": ("augmentation_agreement",),
    "linear predictability": ("linear_predictability",),
    "vote of the three (the default)": (
        "scores",
        "augmentation_agreement",
        "linear_predictability",
    ),
}


def _rule_pick(result: dict, sources: tuple[str, ...]) -> int | None:
    """The candidate a rule picks from a result's recorded scores: the highest score, or
    the vote of :func:`deepclust.model_selection.choose_n_clusters` over several."""
    from deepclust.model_selection._n_clusters import _best, _votes

    other = result.get("other_scores", {})
    columns = [result["scores"] if name == "scores" else other.get(name, {}) for name in sources]
    if not all(columns):
        return None
    table = [
        {
            "n_clusters": int(k),
            "score": columns[0][k],
            "scores": {name: column[k] for name, column in zip(sources, columns, strict=True)},
        }
        for k in columns[0]
    ]
    votes = _votes(table, list(sources)) if len(sources) > 1 else {}
    return _best(table, votes)


#: The rule of ``choose_n_clusters``'s default scoring.
DEFAULT_RULE = "vote of the three (the default)"


def _chosen(result: dict) -> int:
    """The default rule's pick from the result's recorded scores."""
    return _rule_pick(result, RULES[DEFAULT_RULE])


def _steps_off(result: dict, pick: int) -> int:
    return result["candidates"].index(pick) - result["candidates"].index(result["true_k"])


def _miss(result: dict, pick: int | None) -> str:
    """The pick, with its steps off the true K when it misses."""
    if pick is None:
        return "-"
    off = _steps_off(result, pick)
    return str(pick) + ("" if off == 0 else f" ({off:+d})")


def rule_rows(results: list[dict]) -> list[list[str]]:
    """One row per selection rule: its exact picks and picks within one step, over the
    runs and over the data sets (a data set counts when every seed's pick does).

    Parameters
    ----------
    results : list of dict
        The runs shown.

    Returns
    -------
    list of list of str
    """
    rows = []
    for rule, sources in RULES.items():
        steps: dict[str, list[int]] = {}
        for r in results:
            pick = _rule_pick(r, sources)
            if pick is not None:
                steps.setdefault(_label(r), []).append(_steps_off(r, pick))
        every = [off for offs in steps.values() for off in offs]
        rows.append(
            [
                rule,
                f"{sum(off == 0 for off in every)}/{len(every)}",
                f"{sum(abs(off) <= 1 for off in every)}/{len(every)}",
                f"{sum(all(o == 0 for o in offs) for offs in steps.values())}/{len(steps)}",
                f"{sum(all(abs(o) <= 1 for o in offs) for offs in steps.values())}/{len(steps)}",
            ]
        )
    return rows


RULE_HEADER = [
    "rule",
    "runs exact",
    "runs within 1 step",
    "data sets exact (every seed)",
    "data sets within 1 step (every seed)",
]


def _scores_cell(result: dict) -> str:
    """``candidate: silhouette`` for every candidate, the chosen one in bold."""
    cells = []
    for k in result["candidates"]:
        text = f"{k}: {result['scores'][str(k)]:.3f}"
        cells.append(f"**{text}**" if k == _chosen(result) else text)
    return ", ".join(cells)


def run_rows(results: list[dict]) -> list[list[str]]:
    """One row per run: scores by candidate, the picks, the accuracies, the times.

    Parameters
    ----------
    results : list of dict
        The runs shown.

    Returns
    -------
    list of list of str
    """
    rows = []
    for r in sorted(results, key=lambda r: (_label(r), r["seed"])):
        chosen = _chosen(r)
        # The run's labels are those of the pick of the rule it ran with.
        acc = r["chosen_scores"]["acc"] if r["chosen_k"] == chosen else None
        rows.append(
            [
                _label(r),
                str(r["seed"]),
                _scores_cell(r),
                _miss(r, _rule_pick(r, ("scores",))),
                _miss(r, _rule_pick(r, ("augmentation_agreement",))),
                _miss(r, _rule_pick(r, ("linear_predictability",))),
                _miss(r, chosen),
                str(r.get("grid_chosen_k", "-")),
                _num(acc),
                _num(r.get("fit_scores", {}).get("acc")),
                f"{r['sweep_seconds']:.0f}",
                _num(r.get("fit_seconds"), 0),
                _num(r.get("cost_ratio"), 2),
                _num(r.get("cost_ratio_cpu"), 2),
            ]
        )
    return rows


def summary_rows(results: list[dict]) -> list[list[str]]:
    """One row per data set: the picks over seeds, hits, and the sweep's cost ratio.

    Parameters
    ----------
    results : list of dict
        The runs shown.

    Returns
    -------
    list of list of str
    """
    by_data: dict[str, list[dict]] = {}
    for r in results:
        by_data.setdefault(_label(r), []).append(r)
    rows = []
    for label, runs in sorted(by_data.items()):
        runs = sorted(runs, key=lambda r: r["seed"])
        ratios = [r["cost_ratio"] for r in runs if "cost_ratio" in r]
        cpu = [r["cost_ratio_cpu"] for r in runs if "cost_ratio_cpu" in r]
        rows.append(
            [
                label,
                str(runs[0]["n_samples"]),
                str(runs[0]["true_k"]),
                ", ".join(str(k) for k in runs[0]["candidates"]),
                ", ".join(str(r["seed"]) for r in runs),
                ", ".join(str(_chosen(r)) for r in runs),
                f"{sum(_steps_off(r, _chosen(r)) == 0 for r in runs)}/{len(runs)}",
                f"{sum(abs(_steps_off(r, _chosen(r))) <= 1 for r in runs)}/{len(runs)}",
                _num(float(np.mean(ratios)) if ratios else None, 2),
                _num(max(ratios) if ratios else None, 2),
                _num(float(np.mean(cpu)) if cpu else None, 2),
                _num(max(cpu) if cpu else None, 2),
            ]
        )
    return rows


def provenance(results: list[dict]) -> list[str]:
    """The machines, dates, commits, commands and files of the runs shown.

    Parameters
    ----------
    results : list of dict
        The runs shown.

    Returns
    -------
    list of str
        RST lines.
    """
    lines = ["Machines: " + "; ".join(sorted({str(r.get("machine")) for r in results})) + "."]
    lines += ["", "Dates: " + ", ".join(sorted({str(r.get("date")) for r in results})) + "."]
    lines += ["", "Commits: " + ", ".join(sorted({str(r.get("commit")) for r in results})) + "."]
    lines += ["", "Commands (one per run, from the repository root)::", ""]
    lines += [f"    {r['command']}" for r in sorted(results, key=lambda r: r["file"])]
    lines += ["", "Result files: " + ", ".join(f"``{r['file']}``" for r in results) + "."]
    return lines


def report(results: list[dict]) -> list[str]:
    """The RST lines of the include file.

    Parameters
    ----------
    results : list of dict
        The runs shown.

    Returns
    -------
    list of str
    """
    if not results:
        return ["No choose-K results yet: run ``benchmarks/choose_k.py``."]
    lines = [".. Generated by benchmarks/report_choose_k.py; do not edit.", ""]
    methods = ", ".join(sorted({f"{r['method']} (budget {r['budget']})" for r in results}))
    lines += [
        f"Per data set ({methods}; ``choose_n_clusters``'s default scoring, the vote of "
        "the silhouette, the augmentation agreement and the linear predictability):",
        "",
    ]
    lines += _table(SUMMARY_HEADER, summary_rows(results))
    lines += ["", "By selection rule, from the same fits' recorded scores:", ""]
    lines += _table(RULE_HEADER, rule_rows(results))
    lines += [
        "",
        "Per run (the vote's pick in bold; a miss shows its steps off; ACC at chosen only "
        "where the run's own choice was the vote's, the runs made before the vote was "
        "the default chose by the silhouette):",
        "",
    ]
    lines += _table(RUN_HEADER, run_rows(results))
    return lines + [""] + provenance(results)


def main(argv: list[str] | None = None) -> None:
    """Write the include file and say which result files it leaves out.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--out", default=str(ROOT.parent / "docs" / "_bench" / "choose_k.rst.inc"))
    args = parser.parse_args(argv)
    shown, superseded = newest_runs(load_results(Path(args.results)))
    for r in superseded:
        print(f"not shown: {r['file']} (a newer run of seed {r.get('seed')} exists)")
    Path(args.out).write_text("\n".join(report(shown)) + "\n")
    print(f"wrote {args.out} from {len(shown)} runs")


if __name__ == "__main__":
    main()

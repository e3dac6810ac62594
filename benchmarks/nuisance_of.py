"""The nuisance report of recorded benchmark labels, for result files made without one.

``python benchmarks/nuisance_of.py RESULT [RESULT ...]`` loads each result's data (the
same data set, subset and variant as ``quality.py``), scores its recorded ``labels`` with
:func:`deepclust.diagnostics.nuisance_report` and prints the statistics that explain the
clusters most (score, and whether it passes the warning threshold). The result files are
not changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quality import load_benchmark_data  # noqa: E402

from deepclust.diagnostics import nuisance_report  # noqa: E402


def report_of(path: Path, top: int) -> str:
    """One line: the result's name, its ACC and its ``top`` nuisance statistics.

    Parameters
    ----------
    path : Path
        A ``quality.py`` or ``baselines.py`` result file holding ``labels``.
    top : int
        How many statistics to show.

    Returns
    -------
    str
    """
    result = json.loads(path.read_text())
    limit = result.get("n_samples") if "-n" in result.get("data_name", "") else None
    X, _, _ = load_benchmark_data(result["data"], limit, int(result["seed"]))
    labels = np.asarray(result["labels"])
    report = nuisance_report(X, labels, random_state=int(result["seed"]))
    scores = ", ".join(f"{s.name} {s.score:.2f}" for s in report.scores[:top])
    flag = "flagged" if report.flagged else "not flagged"
    return f"{path.name}: ACC {result['acc']:.3f}; {scores} ({flag})"


def main(argv: list[str] | None = None) -> None:
    """Print the nuisance report of every result file given.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=3)
    args = parser.parse_args(argv)
    for path in args.results:
        print(report_of(path, args.top))


if __name__ == "__main__":
    main()

"""Tabulate ``benchmarks/results/quality-*.json`` into ``docs/_bench/quality.rst.inc``.

Run after ``quality.py`` runs; the docs include the generated file, so every figure on the
benchmarks page comes from a result file.

Usage: python benchmarks/report_quality.py [--results DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # quality.py, for its PROFILES
METHOD_TITLES = {
    "sela": "SelfLabelClusterer (SeLa)",
    "deepcluster": "DeepClusterEstimator (DeepCluster)",
    "scan": "SCANClusterer (SCAN)",
    "clusterfit": "ClusterFitTransformer (ClusterFit)",
}


def _is_current(result: dict) -> bool:
    """Whether a run used exactly the current profile of ``quality.py``."""
    from quality import PROFILES

    params = {k: v for k, v in result["params"].items() if k not in ("n_clusters", "random_state")}
    return PROFILES[result["method"]].get(result["profile"]) == params


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    rule = "  ".join("=" * w for w in widths)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [rule, fmt.format(*header), rule]
    lines += [fmt.format(*row) for row in rows]
    lines.append(rule)
    return lines


def _row(result: dict) -> list[str]:
    sizes = np.asarray(result["cluster_sizes"])
    ratio = f"{sizes.max() / max(sizes.min(), 1):.2f}" if sizes.min() > 0 else "inf"
    return [
        str(result["seed"]), str(len(sizes)), f"{result['acc']:.3f}", f"{result['nmi']:.3f}",
        f"{result['ari']:.3f}", f"{result['acc_majority']:.3f}",
        f"{result['seconds'] / 60:.1f}", ratio, result.get("commit") or "-",
    ]


def _extras(method: str, results: list[dict]) -> list[str]:
    lines: list[str] = []
    if method == "scan":
        header = ["seed", "stage", "ACC", "NMI", "ARI"]
        rows = []
        for r in results:
            for stage in ("pretext_kmeans", "scan", "selflabel"):
                if stage in r.get("stages", {}):
                    s = r["stages"][stage]
                    rows.append([str(r["seed"]), stage, f"{s['acc']:.3f}", f"{s['nmi']:.3f}",
                                 f"{s['ari']:.3f}"])
        lines += ["The three stages side by side (``stage_labels_``); mined-neighbour "
                  "accuracy: " + ", ".join(
                      f"seed {r['seed']} {r['neighbor_accuracy']:.3f}" for r in results
                      if r.get("neighbor_accuracy") is not None) + ".", ""]
        lines += _table(header, rows)
    if method == "clusterfit":
        header = ["seed", "K", "network ACC", "network NMI", "probe N_pre", "probe ClusterFit"]
        rows = []
        for r in results:
            net = r.get("clusterfit_network", {})
            probe = r.get("linear_probe", {})
            rows.append([
                str(r["seed"]), str(len(r["cluster_sizes"])),
                f"{net['acc']:.3f}" if net else "-", f"{net['nmi']:.3f}" if net else "-",
                f"{probe['pretrained']:.4f}" if "pretrained" in probe else "-",
                f"{probe['clusterfit']:.4f}" if "clusterfit" in probe else "-",
            ])
        lines += ["``labels_`` above are the k-means pseudo-labels of ``N_pre``'s features; "
                  "here the fresh ClusterFit network's own clusters (``predict``) and the "
                  "linear-probe test accuracy (logistic regression on the 60,000 training "
                  "images' features, scored on the 10,000 test images) of ``N_pre`` and of the "
                  "ClusterFit network.", ""]
        lines += _table(header, rows)
    if method == "deepcluster":
        lines += ["Consecutive-assignment NMI (the paper's stability curve), first and last "
                  "epochs: " + "; ".join(
                      f"seed {r['seed']} K={len(r['cluster_sizes'])}: "
                      f"{r['nmi_previous'][1]:.3f} -> {r['nmi_previous'][-1]:.3f}"
                      for r in results if len(r.get("nmi_previous", [])) > 1) + "."]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--out", default=str(ROOT.parent / "docs" / "_bench" /
                                             "quality.rst.inc"))
    args = parser.parse_args(argv)
    results = [json.loads(p.read_text())
               for p in sorted(Path(args.results).glob("quality-*.json"))]
    lines: list[str] = []
    for method, title in METHOD_TITLES.items():
        mine = sorted((r for r in results if r["method"] == method),
                      key=lambda r: (len(r["cluster_sizes"]), r["profile"], r["seed"]))
        if not mine:
            continue
        lines += [title, "~" * len(title), ""]
        groups: dict[str, list[dict]] = {}
        for r in mine:  # one table per profile and parameter set
            params = {k: v for k, v in r["params"].items()
                      if k not in ("n_clusters", "random_state")}
            groups.setdefault(r["profile"] + json.dumps(params, sort_keys=True), []).append(r)
        for _, runs in sorted(groups.items(),
                              key=lambda item: (not _is_current(item[1][0]), -len(item[1]))):
            profile = runs[0]["profile"]
            first = runs[0]
            params = ", ".join(f"{k}={v!r}" for k, v in first["params"].items()
                               if k not in ("n_clusters", "random_state"))
            status = "The current" if _is_current(first) else "An earlier recipe, not the current"
            lines += [
                f"{status} ``{profile}`` profile on {first['data']} "
                f"({first['n_samples']:,} images), "
                f"{first['date']}, {first['machine']}. Parameters: ``{params}``. Command::",
                "", "    " + first["command"], "",
            ]
            header = ["seed", "K", "ACC", "NMI", "ARI", "ACC (majority)", "minutes",
                      "max/min size", "commit"]
            lines += _table(header, [_row(r) for r in runs]) + [""]
            extra = _extras(method, runs)
            if extra:
                lines += extra + [""]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} from {len(results)} result files")


if __name__ == "__main__":
    main()

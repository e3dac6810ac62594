"""``deepclust review`` and ``deepclust export``: clusters.csv, the exported tree, mappings."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from deepclust.cli import main


def run_cli(*args) -> int:
    return main([str(a) for a in args])


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_mapping(path: Path, names: dict, columns=("cluster", "name")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for cluster, name in names.items():
            writer.writerow([cluster, name][: len(columns)])
    return path


def exported_files(root: Path) -> dict[str, Path]:
    """Every file of an exported tree but labels.csv, by its path relative to ``root``."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if relative != "labels.csv":
                files[relative] = path
    return files


def cluster_of(run: Path) -> dict[str, int]:
    return {row["source"]: int(row["cluster"]) for row in read_csv(run / "labels.csv")}


@pytest.fixture(scope="module")
def folder_run(image_folder, tmp_path_factory):
    """`deepclust cluster` of 60 digit PNGs in nested folders (SeLa, 3 clusters, 1 epoch)."""
    out = tmp_path_factory.mktemp("run") / "run"
    code = run_cli(
        "cluster", image_folder, "--method", "sela", "--n-clusters", 3, "--epochs", 1,
        "--batch-size", 32, "--device", "cpu", "--out", out, "--quiet",
    )  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """`deepclust cluster digits` (SeLa, 10 clusters, 1 epoch)."""
    out = tmp_path_factory.mktemp("digits") / "run"
    code = run_cli(
        "cluster", "digits", "--method", "sela", "--n-clusters", 10, "--epochs", 1,
        "--device", "cpu", "--out", out, "--quiet",
    )  # fmt: skip
    assert code == 0
    return out


def test_review_writes_one_row_per_cluster(folder_run):
    labels = read_csv(folder_run / "labels.csv")
    assert run_cli("review", folder_run) == 0
    try:
        rows = read_csv(folder_run / "clusters.csv")
    finally:
        (folder_run / "clusters.csv").unlink()
    assert [row["cluster"] for row in rows] == ["0", "1", "2"]
    assert list(rows[0]) == ["cluster", "size", "mean_confidence", "name"]
    for row in rows:
        mine = [float(r["confidence"]) for r in labels if r["cluster"] == row["cluster"]]
        assert int(row["size"]) == len(mine)
        assert float(row["mean_confidence"]) == pytest.approx(np.mean(mine), abs=1e-4)
        assert row["name"] == ""


def test_review_keeps_an_edited_file_unless_forced(digits_run, capsys):
    path = digits_run / "clusters.csv"
    try:
        assert run_cli("review", digits_run) == 0
        assert run_cli("review", digits_run) == 0  # no names yet: replaced
        write_mapping(path, {0: "zero"})
        assert run_cli("review", digits_run) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("deepclust: error:") and "--force" in err and "\n" not in err
        assert read_csv(path)[0]["name"] == "zero"
        assert run_cli("review", digits_run, "--force") == 0
        assert all(row["name"] == "" for row in read_csv(path))
    finally:
        path.unlink(missing_ok=True)


def test_the_report_links_clusters_csv(folder_run):
    assert 'href="clusters.csv"' in (folder_run / "report.html").read_text(encoding="utf-8")


def test_export_puts_every_image_once_in_its_cluster_folder(folder_run, image_folder, tmp_path):
    out = tmp_path / "export"
    assert run_cli("export", folder_run, "--to", out) == 0
    clusters = cluster_of(folder_run)
    files = exported_files(out)
    assert sorted(path.split("/", 1)[1] for path in files) == sorted(clusters)
    for relative, path in files.items():
        folder, source = relative.split("/", 1)
        assert folder == f"cluster_{clusters[source]}"
        assert path.is_symlink()
        assert path.resolve() == (image_folder / source).resolve()
    rows = read_csv(out / "labels.csv")
    assert sorted(row["path"] for row in rows) == sorted(files)
    assert all(row["label"] == row["path"].split("/")[0] for row in rows)
    assert all(row["unsure"] == "0" for row in rows)


def test_export_copies_with_copy(folder_run, image_folder, tmp_path):
    out = tmp_path / "export"
    assert run_cli("export", folder_run, "--to", out, "--copy") == 0
    for relative, path in exported_files(out).items():
        assert not path.is_symlink()
        assert path.read_bytes() == (image_folder / relative.split("/", 1)[1]).read_bytes()


def test_a_mapping_merges_and_drops_clusters(folder_run, tmp_path):
    mapping = write_mapping(
        tmp_path / "clusters.csv", {0: "round", 1: "round", 2: "_drop"}, ("cluster", "name")
    )
    out = tmp_path / "export"
    assert run_cli("export", folder_run, "--to", out, "--mapping", mapping) == 0
    clusters = cluster_of(folder_run)
    kept = sorted(source for source, k in clusters.items() if k in (0, 1))
    files = exported_files(out)
    assert sorted(files) == sorted(f"round/{source}" for source in kept)
    assert {row["label"] for row in read_csv(out / "labels.csv")} == {"round"}
    assert sorted(row["source"] for row in read_csv(out / "labels.csv")) == kept


def test_unsure_images_go_to_their_own_folder(folder_run, tmp_path):
    rows = read_csv(folder_run / "labels.csv")
    threshold = float(np.median([float(row["confidence"]) for row in rows]))
    out = tmp_path / "export"
    assert run_cli("export", folder_run, "--to", out, "--min-confidence", threshold) == 0
    files = exported_files(out)
    assert len(files) == len(rows)
    for row in rows:
        where = f"cluster_{row['cluster']}/{row['source']}"
        if float(row["confidence"]) < threshold:
            where = "_unsure/" + where
        assert where in files


def test_export_of_a_data_set_writes_labels_only(digits_run, tmp_path, capsys):
    out = tmp_path / "export"
    assert run_cli("export", digits_run, "--to", out) == 0
    assert "only" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["labels.csv"]
    rows = read_csv(out / "labels.csv")
    assert [int(row["index"]) for row in rows] == list(range(1797))
    clusters = cluster_of(digits_run)
    assert all(row["label"] == f"cluster_{clusters[row['index']]}" for row in rows)


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({0: "a", 7: "b"}, "no cluster 7"),
        ({0: "a", 0.5: "b"}, "is not a number"),
        ({0: "a", 1: "a/b"}, "cannot be a folder name"),
        ({0: "a", 1: "A"}, "differ only in case"),
        ({0: "a", 1: "b", 2: "_unsure"}, "cannot be a folder name"),
    ],
)
def test_a_bad_mapping_exits_2_and_writes_nothing(folder_run, tmp_path, capsys, mapping, message):
    path = write_mapping(tmp_path / "clusters.csv", mapping)
    out = tmp_path / "export"
    assert run_cli("export", folder_run, "--to", out, "--mapping", path) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepclust: error:") and err.count("\n") == 1 and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clusters.csv"]


def test_a_mapping_without_a_name_column_is_refused(folder_run, tmp_path, capsys):
    path = write_mapping(tmp_path / "map.csv", {0: "a"}, ("cluster", "label"))
    assert run_cli("export", folder_run, "--to", tmp_path / "export", "--mapping", path) == 2
    assert "deepclust review" in capsys.readouterr().err
    assert not (tmp_path / "export").exists()


def test_a_mapping_of_another_run_is_refused(folder_run, digits_run, tmp_path, capsys):
    path = tmp_path / "clusters.csv"
    assert run_cli("review", digits_run) == 0
    try:
        os.replace(digits_run / "clusters.csv", path)
    finally:
        (digits_run / "clusters.csv").unlink(missing_ok=True)
    rows = read_csv(path)[:3]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert run_cli("export", folder_run, "--to", tmp_path / "export", "--mapping", path) == 2
    assert "another run" in capsys.readouterr().err
    assert not (tmp_path / "export").exists()


def test_export_refuses_what_is_not_a_run_or_a_new_folder(folder_run, tmp_path, capsys):
    assert run_cli("export", tmp_path, "--to", tmp_path / "export") == 2
    assert "not the folder of a finished deepclust cluster run" in capsys.readouterr().err
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("x")
    assert run_cli("export", folder_run, "--to", taken) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in taken.iterdir()) == ["file"]


def test_a_moved_source_folder_is_refused(image_folder, tmp_path, capsys):
    source = tmp_path / "images"
    source.mkdir()
    for path in sorted(image_folder.rglob("*.png"))[:12]:
        (source / path.name).write_bytes(path.read_bytes())
    run = tmp_path / "run"
    code = run_cli(
        "cluster", source, "--method", "sela", "--n-clusters", 2, "--epochs", 1,
        "--device", "cpu", "--out", run, "--quiet",
    )  # fmt: skip
    assert code == 0
    (source / "img_000.png").unlink()
    assert run_cli("export", run, "--to", tmp_path / "export") == 2
    assert "changed since the run" in capsys.readouterr().err
    source.rename(tmp_path / "moved")
    assert run_cli("export", run, "--to", tmp_path / "export") == 2
    assert "no longer exists" in capsys.readouterr().err
    assert not (tmp_path / "export").exists()


def test_a_failed_export_leaves_nothing(folder_run, tmp_path, monkeypatch):
    calls = []

    def failing_symlink(source, target):
        calls.append(target)
        if len(calls) == 5:
            raise OSError(28, "No space left on device", str(target))
        os.link(source, target)

    monkeypatch.setattr(os, "symlink", failing_symlink)
    assert run_cli("export", folder_run, "--to", tmp_path / "export") == 2
    assert list(tmp_path.iterdir()) == []

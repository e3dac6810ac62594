"""SCAN-step and pseudo-labelling variants on a cached Fashion-MNIST pretext.

The pretext is most of a SCAN run with the recipe resolved for all 70,000 images on a
CPU (``budget='default'``); training it once per seed and reusing it makes the later
stages cheap to compare. Three commands::

    python benchmarks/pretext_sweep.py pretext --seed 1     # trains and caches the pretext
    python benchmarks/pretext_sweep.py scan --seed 1 --name warm2 \\
        --set head_warmup_epochs=2                          # SCAN step + self-labelling
    python benchmarks/pretext_sweep.py kmeans --seed 1      # clusterings of its features

``pretext`` fits :class:`~deepclust.SCANClusterer` with that recipe's settings and no
SCAN or self-labelling epochs (so its pretext is the one a full run with that seed
trains) and caches the estimator and its backbone features under ``--cache``. ``scan``
runs the SCAN step and self-labelling from it (``pretrained=`` the cached estimator)
with ``--set`` overrides and appends one JSON line (every stage's ACC/NMI/ARI, every
head's final ACC, cluster sizes) to ``--out``. ``kmeans`` prints ACC/NMI of k-means,
over-cluster-and-merge, kNN smoothing and PCA-whitening on the cached features, under
several seeds; ``neighbours`` the accuracy of the mined neighbours (k = 1 to 50) on the
backbone features, the projection head's and flip-averaged backbone features; ``heads``
trains candidate heads with the SCAN loss on the frozen features (as
``n_head_candidates`` does) and lists each one's loss beside its ACC/NMI.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import load_data, random_subset  # noqa: E402

from deepclust import SCANClusterer  # noqa: E402
from deepclust.cluster import PCAWhitening, kmeans, knn, merged_kmeans  # noqa: E402
from deepclust.methods._stages import head_probabilities  # noqa: E402
from deepclust.metrics import evaluate_clustering  # noqa: E402
from deepclust.recipes import recipe_for  # noqa: E402


def recipe_params(X, seed: int) -> dict:
    """SCAN's settings for ``X`` on a CPU: its recipe at ``budget='default'``.

    Parameters
    ----------
    X : numpy.ndarray
        The images.
    seed : int
        ``random_state`` of the estimator.

    Returns
    -------
    dict
        The recipe's parameter values, with ``n_clusters=10``, ``device='cpu'`` and
        ``random_state=seed``.
    """
    est = SCANClusterer(n_clusters=10, device="cpu", random_state=seed)
    params = recipe_for(est, X)["params"]
    return dict(params, n_clusters=10, device="cpu", random_state=seed)


def train_pretext(args, X, y) -> None:
    params = dict(
        recipe_params(X, args.seed),
        max_epochs=0,
        selflabel_epochs=0,
    )
    started = time.perf_counter()
    est = SCANClusterer(**params).fit(X, y)
    print("seconds", time.perf_counter() - started)
    print(
        "pretext_kmeans",
        evaluate_clustering(y, est.stage_labels_["pretext_kmeans"]),
        "neighbour accuracy",
        est.neighbor_accuracy_,
        flush=True,
    )
    args.cache.mkdir(parents=True, exist_ok=True)
    with open(args.cache / f"pretext-{args.tag}-s{args.seed}.pkl", "wb") as f:
        pickle.dump(est, f)
    np.save(args.cache / f"features-{args.tag}-s{args.seed}.npy", est.transform(X))


def scan_variant(args, X, y) -> None:
    with open(args.cache / f"pretext-{args.tag}-s{args.seed}.pkl", "rb") as f:
        pretext = pickle.load(f)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    params = dict(recipe_params(X, args.seed), pretrained=pretext, **overrides)
    started = time.perf_counter()
    est = SCANClusterer(**params).fit(X, y)
    result = {
        "name": args.name,
        "data": args.tag,
        "seed": args.seed,
        "overrides": overrides,
        "seconds": time.perf_counter() - started,
        "stages": {k: evaluate_clustering(y, v) for k, v in est.stage_labels_.items()},
        "head_losses": est.head_losses_.tolist(),
        "best_head": est.best_head_,
    }
    source = est._read_input(X, reset=False)
    probs = head_probabilities(est.network_, source, torch.device("cpu"), 1024)
    result["head_acc_final"] = [evaluate_clustering(y, p.argmax(1).numpy())["acc"] for p in probs]
    result["sizes"] = np.bincount(est.labels_, minlength=10).tolist()
    print(json.dumps(result), flush=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(result) + "\n")


def kmeans_variants(args, X, y) -> None:
    from sklearn.cluster import AgglomerativeClustering, KMeans

    cached = np.load(args.cache / f"features-{args.tag}-s{args.seed}.npy")
    features = torch.nn.functional.normalize(torch.as_tensor(cached).float(), dim=1)

    def report(name, labels):
        scores = evaluate_clustering(y, np.asarray(labels))
        print(f"{name:<34} ACC {scores['acc']:.3f} NMI {scores['nmi']:.3f}", flush=True)

    for seed in range(4):
        report(f"kmeans seed {seed}", kmeans(features, 10, random_state=seed).labels)
    for n_sub in (50, 200):
        for seed in range(3):
            fine = kmeans(features, n_sub, random_state=seed)
            labels = np.asarray(torch.as_tensor(fine.labels))
            centres = torch.as_tensor(fine.centroids).float().numpy()
            sizes = np.bincount(labels, minlength=n_sub)
            merged = KMeans(10, n_init=10, random_state=seed).fit(centres, sample_weight=sizes)
            report(f"over {n_sub} -> kmeans10 s{seed}", merged.labels_[labels])
            ward = AgglomerativeClustering(10, linkage="ward").fit(centres)
            report(f"over {n_sub} -> ward s{seed}", ward.labels_[labels])
    for seed in range(3):
        report(
            f"merged_kmeans 200 s{seed}",
            merged_kmeans(features, 10, n_subclusters=200, random_state=seed).labels,
        )
    neighbours = torch.as_tensor(knn(features, 20, metric="cosine")[0]).long()
    smoothed = torch.nn.functional.normalize(features + features[neighbours].sum(1), dim=1)
    for seed in range(4):
        report(f"knn20-smoothed kmeans s{seed}", kmeans(smoothed, 10, random_state=seed).labels)
    for dim in (16, 32, 64):
        whitened = PCAWhitening(dim, l2_normalize=True).fit_transform(features)
        for seed in range(3):
            report(f"pca{dim} kmeans s{seed}", kmeans(whitened, 10, random_state=seed).labels)


def head_candidates(args, X, y) -> None:
    """Candidate heads trained with the SCAN loss on the frozen cached features.

    What ``SCANClusterer(n_head_candidates=...)`` does before its SCAN step, here with
    every candidate's ACC/NMI beside its SCAN loss over the data set, to see whether the
    lowest loss picks a good partition.
    """
    from deepclust.losses import SCANLoss
    from deepclust.methods.scan import scan_objective
    from deepclust.networks import StackedLinearHeads

    torch.manual_seed(args.seed)
    cached = np.load(args.cache / f"features-{args.tag}-s{args.seed}.npy")
    features = torch.as_tensor(cached).float()
    neighbours = torch.as_tensor(
        knn(torch.nn.functional.normalize(features, dim=1), 20, metric="cosine")[0]
    ).long()
    candidates = StackedLinearHeads(features.shape[1], 10, args.n_candidates)
    optimizer = torch.optim.Adam(candidates.parameters(), lr=1e-3, weight_decay=1e-4)
    criterion = SCANLoss(entropy_weight=5.0)
    started = time.perf_counter()
    for _ in range(args.epochs):
        order = torch.randperm(len(features))
        for i in range(0, len(order), 256):
            anchors = order[i : i + 256]
            partners = neighbours[anchors, torch.randint(0, 20, (len(anchors),))]
            logits = candidates(torch.cat([features[anchors], features[partners]]))
            loss = criterion(*logits.chunk(2, dim=1))[0].sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    rows = []
    with torch.no_grad():
        for probs in torch.softmax(candidates(features), dim=-1):
            scores = evaluate_clustering(y, probs.argmax(1).numpy())
            rows.append((scan_objective(probs, neighbours, 5.0), scores["acc"], scores["nmi"]))
    rows.sort()
    print(
        f"# seed {args.seed}: {args.n_candidates} candidates, {args.epochs} epochs, "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    for loss, acc, nmi in rows:
        print(f"loss {loss:.4f}  ACC {acc:.3f}  NMI {nmi:.3f}")
    losses, accs = np.array(rows)[:, 0], np.array(rows)[:, 1]
    print(
        f"correlation(loss, ACC) {np.corrcoef(losses, accs)[0, 1]:.2f}; ACC of the "
        f"lowest-loss candidate {accs[0]:.3f}, mean {accs.mean():.3f}, "
        f"range {accs.min():.3f}-{accs.max():.3f}"
    )


def neighbour_variants(args, X, y) -> None:
    """Accuracy of the mined neighbours on several feature views, for several k."""
    with open(args.cache / f"pretext-{args.tag}-s{args.seed}.pkl", "rb") as f:
        est = pickle.load(f)
    network = est.network_.eval()
    source = est._read_input(X, reset=False)
    views = {
        "backbone": lambda b: network.features(b),
        "projection": lambda b: network.project(b),
        "backbone+hflip": lambda b: network.features(b) + network.features(b.flip(-1)),
    }
    for name, view in views.items():
        with torch.no_grad():
            features = torch.cat(
                [
                    view(source.load(np.arange(i, min(i + 2048, len(X)))))
                    for i in range(0, len(X), 2048)
                ]
            )
        features = torch.nn.functional.normalize(features.float(), dim=1)
        indices = torch.as_tensor(knn(features, 50, metric="cosine")[0]).long().numpy()
        hits = y[indices] == y[:, None]
        line = " ".join(f"k={k} {hits[:, :k].mean():.3f}" for k in (1, 5, 10, 20, 50))
        print(f"{name:<16} {line}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["pretext", "scan", "kmeans", "neighbours", "heads"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="variant")
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=JSON")
    parser.add_argument("--data", default="fashion-mnist", help="as quality.py's --data")
    parser.add_argument("--limit", type=int, default=None, help="as quality.py's --limit")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/deepclust-pretext-sweep"))
    parser.add_argument("--out", default="benchmarks/results/pretext_sweep.jsonl")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-candidates", type=int, default=20, help="for 'heads'")
    parser.add_argument("--epochs", type=int, default=20, help="for 'heads'")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, y, info = load_data(args.data)
    args.tag = info["data_name"]
    if args.limit is not None and args.limit < len(X):
        X, y = random_subset(X, y, args.limit, args.seed)  # quality.py's subset
        args.tag += f"-n{args.limit}"
    {
        "pretext": train_pretext,
        "scan": scan_variant,
        "kmeans": kmeans_variants,
        "neighbours": neighbour_variants,
        "heads": head_candidates,
    }[args.command](args, X, y)


if __name__ == "__main__":
    main()

"""How much ClusterFit's pseudo-labels depend on the k-means seed and settings.

Trains ClusterFit's pretext (``N_pre``), with the recipe resolved for a 10,000-image
Fashion-MNIST subset on a CPU (``budget='default'``), then clusters its L2-normalised
features with k-means under several seeds, ``n_init``/``n_iter`` settings and
PCA-whitening sizes, printing inertia, ACC and NMI.

Usage: python benchmarks/clusterfit_kmeans_spread.py [--limit 10000] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import load_data, random_subset  # noqa: E402

from deepclust import ClusterFitTransformer  # noqa: E402
from deepclust.cluster import PCAWhitening, kmeans  # noqa: E402
from deepclust.metrics import evaluate_clustering  # noqa: E402
from deepclust.recipes import recipe_for  # noqa: E402


def recipe_params(X) -> dict:
    """ClusterFit's settings for ``X`` on a CPU: its recipe at ``budget='default'``.

    Parameters
    ----------
    X : numpy.ndarray
        The images.

    Returns
    -------
    dict
        The recipe's parameter values, with ``n_clusters=10``, ``device='cpu'`` and
        ``random_state=0``.
    """
    est = ClusterFitTransformer(n_clusters=10, device="cpu", random_state=0)
    params = recipe_for(est, X)["params"]
    return dict(params, n_clusters=10, device="cpu", random_state=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, y, _ = load_data("fashion-mnist")
    X, y = random_subset(X, y, args.limit, seed=0)
    est = ClusterFitTransformer(**dict(recipe_params(X), max_epochs=1)).fit(X)
    features = torch.nn.functional.normalize(
        torch.as_tensor(est.pretrained_transform(X)).float(), dim=1
    )

    def report(name: str, data: torch.Tensor, **kwargs) -> None:
        for seed in range(args.seeds):
            result = kmeans(data, 10, random_state=seed, **kwargs)
            scores = evaluate_clustering(y, result.labels)
            print(
                f"{name:<22} seed {seed}  inertia {float(result.inertia):8.1f}  "
                f"ACC {scores['acc']:.3f}  NMI {scores['nmi']:.3f}",
                flush=True,
            )

    report("n_init 1, n_iter 20", features, n_iter=20)
    report("n_init 1, n_iter 100", features, n_iter=100)
    report("n_init 10, n_iter 100", features, n_init=10, n_iter=100)
    for dim in (16, 32):
        report(
            f"PCA-whitened {dim}",
            PCAWhitening(dim, l2_normalize=True).fit_transform(features),
            n_iter=20,
        )


if __name__ == "__main__":
    main()

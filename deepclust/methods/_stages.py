"""Training stages and steps shared by the four methods."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from deepclust.augment import make_augmentation, with_invariances
from deepclust.data import DataSource
from deepclust.losses import MultiHeadCrossEntropy, NTXentLoss
from deepclust.networks import ClusteringNetwork
from deepclust.training import Stage, autocast_dtype
from deepclust.training._inference import run_sharded_inference

__all__ = [
    "make_fetch",
    "make_augment",
    "extract_features",
    "head_probabilities",
    "head_softmax",
    "contrastive_stage",
    "pseudo_label_stage",
    "balanced_sampler",
]


def make_fetch(
    source: DataSource, device: torch.device
) -> Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]]:
    """A ``Stage.fetch`` returning ``(indices, samples)`` on the CPU (pinned for CUDA).

    Parameters
    ----------
    source : DataSource
        The training data.
    device : torch.device
        The training device (host memory is pinned when it is a CUDA device).

    Returns
    -------
    callable
        ``fetch(indices) -> (indices, samples)``.
    """
    pin = device.type == "cuda"

    def fetch(indices: np.ndarray):
        batch = source.load(indices)
        if pin:
            batch = batch.pin_memory()
        return torch.from_numpy(np.asarray(indices)), batch

    return fetch


def make_augment(policy, source: DataSource, invariances=()) -> nn.Module:
    """The augmentation module for ``source`` (identity for 2-D features).

    Parameters
    ----------
    policy : str, nn.Module or None
        A policy name of :func:`deepclust.augment.make_augmentation`, a module, or
        ``None`` for none.
    source : DataSource
        The data the augmentation applies to (its image size and channels).
    invariances : sequence of str, default=()
        Declared invariances whose random transforms follow the policy
        (:func:`deepclust.augment.with_invariances`).

    Returns
    -------
    nn.Module
    """
    if source.kind != "images":
        return make_augmentation("none")
    policy = "none" if policy is None else policy
    module = make_augmentation(policy, image_size=source.shape[1:], n_channels=source.shape[0])
    return with_invariances(module, invariances)


def extract_features(
    network: ClusteringNetwork,
    source: DataSource,
    device: torch.device,
    batch_size: int,
    progress: str | None = None,
    large_dtype: torch.dtype | None = None,
    gather: bool = True,
) -> torch.Tensor:
    """Backbone features of every sample (eval mode, no augmentation), float32 on the CPU
    (``large_dtype`` above :data:`~deepclust.training._inference.LARGE_OUTPUT_VALUES`).

    In a data-parallel fit each rank computes its block of the samples and the blocks are
    gathered in order (:func:`~deepclust.training._inference.run_sharded_inference`).

    Parameters
    ----------
    network : ClusteringNetwork
        The network whose ``features`` are computed.
    source : DataSource
        The samples.
    device : torch.device
        Where the network runs.
    batch_size : int
        Samples per forward pass.
    progress : str, optional
        A progress-bar description.
    large_dtype : torch.dtype, optional
        Storage of a feature matrix of more than 2**28 values (``torch.float16`` for the
        k-means steps: half the host memory at ImageNet size); None keeps float32.
    gather : bool, default=True
        In a data-parallel fit, gather every rank's block; ``False`` returns this rank's
        block only (:func:`~deepclust.training._data_parallel.rank_rows`).

    Returns
    -------
    torch.Tensor of shape (n_samples, n_features)
        Or ``(n_rank, n_features)``, this rank's block, with ``gather=False``.
    """
    return run_sharded_inference(
        network.features,
        source,
        gather=gather,
        device=device,
        batch_size=batch_size,
        modules=(network,),
        autocast=True,
        progress=progress,
        large_dtype=large_dtype,
    )


def normalize_rows_(features: torch.Tensor, chunk_rows: int = 65536) -> torch.Tensor:
    """L2-normalise the rows of ``features`` in place, in its own dtype (row blocks
    computed in float32, so a float16 matrix gets no full-size float32 copy).

    Parameters
    ----------
    features : torch.Tensor of shape (n_samples, n_features)
        A floating feature matrix, changed in place.
    chunk_rows : int, default=65536
        Rows normalised at a time.

    Returns
    -------
    torch.Tensor
        ``features``.
    """
    for start in range(0, features.shape[0], chunk_rows):
        block = features[start : start + chunk_rows]
        block.copy_(nn.functional.normalize(block.float(), dim=1))
    return features


def head_probabilities(
    network: ClusteringNetwork,
    source: DataSource,
    device: torch.device,
    batch_size: int,
    output_device: torch.device | None = None,
    progress: str | None = None,
) -> list[torch.Tensor]:
    """Softmax of every clustering head over the whole data set, float32.

    In a data-parallel fit each rank computes its block of the samples and the blocks are
    gathered in order (:func:`~deepclust.training._inference.run_sharded_inference`).

    Parameters
    ----------
    network : ClusteringNetwork
        The network whose heads are evaluated.
    source : DataSource
        The samples.
    device : torch.device
        Where the network runs.
    batch_size : int
        Samples per forward pass.
    output_device : torch.device, optional
        Where the probabilities are returned (default: the CPU).
    progress : str, optional
        A progress-bar description.

    Returns
    -------
    list of torch.Tensor of shape (n_samples, n_clusters)
        One per head.
    """

    def probs(batch: torch.Tensor) -> list[torch.Tensor]:
        return [torch.softmax(logits.float(), dim=1) for logits in network(batch)]

    outputs = run_sharded_inference(
        probs,
        source,
        device=device,
        batch_size=batch_size,
        modules=(network,),
        autocast=True,
        progress=progress,
    )
    return [o.to(output_device) if output_device is not None else o for o in outputs]


def head_softmax(
    head: nn.Module,
    features: torch.Tensor,
    device: torch.device,
    batch_size: int,
    *,
    output_device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Softmax of one clustering head over stored features, into one N x K buffer.

    The head reads ``features`` (what :func:`extract_features` returns: the input of every
    head) in chunks of ``batch_size`` rows, under the autocast of the precision policy in
    force as :func:`head_probabilities` runs it, so that with ``dtype=torch.float32`` the
    result equals that head's entry of :func:`head_probabilities`. Only the returned
    buffer is N x K; every other temporary is one chunk.

    Parameters
    ----------
    head : nn.Module
        One clustering head, mapping ``(B, n_features)`` features to ``(B, K)`` logits.
    features : torch.Tensor of shape (n_samples, n_features)
        The heads' input for every sample (on any device; chunks are moved to ``device``).
    device : torch.device
        Where the head runs.
    batch_size : int
        Rows per chunk, ``>= 1``.
    output_device : torch.device, optional
        Where the buffer is (default: the CPU).
    dtype : torch.dtype, default=torch.float32
        The buffer's dtype; the softmax is computed in float32 and rounded to it.

    Returns
    -------
    torch.Tensor of shape (n_samples, K)
        The probabilities, in ``dtype`` on ``output_device``.
    """
    autocast = autocast_dtype(device)
    n_samples, step = len(features), max(1, int(batch_size))
    out = None
    training = head.training
    head.eval()
    try:
        with torch.no_grad():
            for start in range(0, n_samples, step):
                chunk = features[start : start + step].to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                    logits = head(chunk)
                if out is None:
                    out = torch.empty(
                        (n_samples, logits.shape[1]), dtype=dtype, device=output_device or "cpu"
                    )
                out[start : start + len(chunk)] = torch.softmax(logits.float(), dim=1)
    finally:
        head.train(training)
    return out


def contrastive_stage(
    network: ClusteringNetwork,
    source: DataSource,
    device: torch.device,
    *,
    n_epochs: int,
    lr: float,
    temperature: float = 0.1,
    augmentation="simclr",
    invariances=(),
    weight_decay: float = 1e-4,
    name: str = "pretext",
) -> Stage:
    """SimCLR pretext: two augmented views per image, NT-Xent on the projection head.

    Parameters
    ----------
    network : ClusteringNetwork
        Trained through its backbone and projection head (it needs ``projection_dim``).
    source : DataSource
        The training images.
    device : torch.device
        The training device.
    n_epochs : int
        Epochs of the stage.
    lr : float
        SGD learning rate (momentum 0.9, cosine schedule).
    temperature : float
        NT-Xent temperature.
    augmentation : str or nn.Module
        Augmentation of the two views.
    invariances : sequence of str
        Declared invariances, whose transforms follow ``augmentation``.
    weight_decay : float
        SGD weight decay.
    name : str
        The stage's name in the history.

    Returns
    -------
    Stage
    """
    augment = make_augment(augmentation, source, invariances)
    criterion = NTXentLoss(temperature=temperature)
    modules = [network.normalize, network.input_filter, network.backbone, network.projection]
    params = [p for m in modules for p in m.parameters()]

    def compute_loss(batch):
        _, x = batch
        x = x.to(device, non_blocking=True)
        views = torch.cat([augment(x), augment(x)])
        z = network.project(views).float()
        z1, z2 = z.chunk(2)
        return criterion(z1, z2)

    return Stage(
        name=name,
        n_epochs=n_epochs,
        n_samples=len(source),
        compute_loss=compute_loss,
        modules=[network],
        parameters=params,
        fetch=make_fetch(source, device),
        optimizer="sgd",
        lr=lr,
        momentum=0.9,
        weight_decay=weight_decay,
        lr_schedule="cosine",
        drop_last=True,
    )


def pseudo_label_stage(
    network: ClusteringNetwork,
    source: DataSource,
    device: torch.device,
    labels: Callable[[], torch.Tensor],
    *,
    n_epochs: int,
    lr: float,
    augmentation="weak",
    invariances=(),
    name: str = "train",
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 1e-5,
    lr_schedule: str = "cosine",
    sampler=None,
    on_stage_begin=None,
    on_epoch_begin=None,
    on_epoch_end=None,
    parameters=None,
) -> Stage:
    """Cross-entropy of every head against the current pseudo-labels.

    ``labels()`` returns a ``(n_heads, n_samples)`` (or ``(n_samples,)``) int64 tensor on
    ``device``; it is called at every step so methods may redraw the labels between epochs
    (in ``on_epoch_begin``) or compute them first (in ``on_stage_begin``).

    Parameters
    ----------
    network : ClusteringNetwork
        The network trained.
    source : DataSource
        The training data.
    device : torch.device
        The training device.
    labels : callable
        ``labels()`` gives the current pseudo-labels (see above).
    n_epochs : int
        Epochs of the stage.
    lr : float
        Learning rate.
    augmentation : str, nn.Module or None
        Augmentation of the training batches.
    invariances : sequence of str
        Declared invariances, whose transforms follow ``augmentation``.
    name : str
        The stage's name in the history.
    optimizer : {'sgd', 'adam', 'adamw'}
        Optimiser.
    momentum : float
        SGD momentum.
    weight_decay : float
        Weight decay.
    lr_schedule : {'cosine', 'step', 'constant'}
        Learning-rate schedule.
    sampler : callable, optional
        ``sampler(epoch, rng) -> indices`` of an epoch (default: a random permutation).
    on_stage_begin, on_epoch_begin, on_epoch_end : callable, optional
        The stage's hooks (see :class:`~deepclust.training.Stage`).
    parameters : sequence of torch.Tensor, optional
        The parameters optimised (default: all of the network's).

    Returns
    -------
    Stage
    """
    augment = make_augment(augmentation, source, invariances)
    criterion = MultiHeadCrossEntropy()

    def compute_loss(batch):
        idx, x = batch
        x = augment(x.to(device, non_blocking=True))
        current = labels()
        idx = idx.to(current.device)
        targets = current[..., idx]
        return criterion([logits.float() for logits in network(x)], targets)

    return Stage(
        name=name,
        n_epochs=n_epochs,
        n_samples=len(source),
        compute_loss=compute_loss,
        modules=[network],
        parameters=parameters,
        fetch=make_fetch(source, device),
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        lr_schedule=lr_schedule,
        sampler=sampler,
        on_stage_begin=on_stage_begin,
        on_epoch_begin=on_epoch_begin,
        on_epoch_end=on_epoch_end,
    )


def balanced_sampler(labels: Callable[[], np.ndarray], n_samples: int):
    """A ``Stage.sampler`` drawing every non-empty cluster equally often (DeepCluster).

    Each epoch has ``n_samples`` draws: ``n_samples / K'`` per non-empty cluster (``K'``
    of them), members drawn without replacement when the cluster is large enough and with
    replacement otherwise, then shuffled. Empty clusters never reach the sampler.

    Parameters
    ----------
    labels : callable
        ``labels()`` gives the current cluster of every sample.
    n_samples : int
        Draws per epoch.

    Returns
    -------
    callable
        ``sample(epoch, rng) -> indices``.
    """

    def sample(epoch: int, rng: np.random.Generator) -> np.ndarray:
        current = np.asarray(labels())
        clusters = np.unique(current)
        per_cluster = int(np.ceil(n_samples / len(clusters)))
        order = np.argsort(current, kind="stable")
        bounds = np.searchsorted(current[order], clusters, side="left")
        ends = np.append(bounds[1:], len(order))
        chosen = []
        for start, end in zip(bounds, ends):
            members = order[start:end]
            replace = len(members) < per_cluster
            chosen.append(rng.choice(members, per_cluster, replace=replace))
        out = np.concatenate(chosen)
        rng.shuffle(out)
        return out[:n_samples]

    return sample


def pretext_and_main_epochs(epochs: int) -> dict:
    """``--epochs E`` of a method with a pretext: ``E`` pretext epochs and ``ceil(E / 2)``
    of its main step.

    Parameters
    ----------
    epochs : int
        The command's ``--epochs``.

    Returns
    -------
    dict
    """
    return {"pretext_epochs": epochs, "max_epochs": max(1, -(-epochs // 2))}

"""What a recipe knows about a fit: the data's size and shape, and the device."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["DataFacts"]


@dataclass(frozen=True)
class DataFacts:
    """The facts a recipe resolves its settings from.

    Parameters
    ----------
    n_samples : int
        Number of samples to cluster.
    kind : {'images', 'features'}
        Images, or rows of a 2-D feature matrix.
    n_channels : int or None
        1 (grey) or 3 (colour) for images; ``None`` for features.
    height, width : int or None
        The images' own size in pixels before any resizing (for image files, the median
        over the files); ``None`` for features.
    n_features : int or None
        Width of a feature matrix; ``None`` for images.
    device : {'cpu', 'cuda'}
        The type of the device the fit trains on.
    n_clusters : int or None
        The number of clusters asked for.
    input_channels : int or None
        The channels the network reads when an input filter changes them (1 under a
        declared colour invariance, see :class:`~deepclust.networks.InvariantInput`);
        ``None``: ``n_channels``.
    """

    n_samples: int
    kind: str
    n_channels: int | None = None
    height: int | None = None
    width: int | None = None
    n_features: int | None = None
    device: str = "cpu"
    n_clusters: int | None = None
    input_channels: int | None = None

    @property
    def side(self) -> int | None:
        """The longer side of the images in pixels (``None`` for features)."""
        if self.height is None or self.width is None:
            return None
        return max(self.height, self.width)

    @property
    def is_colour(self) -> bool:
        """Whether the network reads three channels (the images have three, and no
        declared invariance reduces them to one)."""
        channels = self.n_channels if self.input_channels is None else self.input_channels
        return channels == 3

    def as_dict(self) -> dict:
        """The facts as a plain dictionary (for ``recipe_`` and ``run.json``).

        Returns
        -------
        dict
        """
        return asdict(self)

    @classmethod
    def from_source(cls, source, device, n_clusters: int | None = None) -> DataFacts:
        """The facts of a :class:`~deepclust.data.DataSource` fitted on ``device``.

        Parameters
        ----------
        source : DataSource
            The validated input.
        device : torch.device or str
            Where the fit trains.
        n_clusters : int, optional
            The number of clusters asked for.

        Returns
        -------
        DataFacts
        """
        device_type = getattr(device, "type", str(device).split(":")[0])
        if source.kind != "images":
            return cls(
                len(source),
                "features",
                n_features=source.shape[0],
                device=device_type,
                n_clusters=n_clusters,
            )
        height, width = source.native_size
        return cls(
            len(source),
            "images",
            n_channels=int(source.shape[0]),
            height=int(height),
            width=int(width),
            device=device_type,
            n_clusters=n_clusters,
        )

"""Shared parameter and attribute descriptions of the estimators' docstrings.

A parameter or fitted attribute that several estimators share is described once, in
:data:`docdict`, and a docstring names it with a ``%(name)s`` placeholder on a line of its
own. :func:`fill_doc`, a class decorator, fills the placeholders of the class docstring and
of its public methods' docstrings when the class is defined, by ``%``-formatting with
:data:`docdict`. The text is indented like the placeholder line, so a placeholder at the
indentation of a numpydoc entry's header inserts a whole entry, and one at the indentation
of a description inserts a description. Lines after the placeholder, indented as a
description, add a method's own remarks to a shared entry.

Because the docstrings of a decorated class go through ``%``-formatting, a literal ``%``
in them is written ``%%``. A placeholder that names no entry raises a :class:`KeyError`
at import time, so a misspelt one cannot pass unnoticed.
"""

from __future__ import annotations

import inspect
import re
import textwrap

__all__ = ["docdict", "fill_doc"]


def _entry(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


#: The augmentation policies, shared by ``augmentation`` and ``pretext_augmentation``.
_AUGMENTATION_FORMS = _entry(
    """
    A policy of :func:`deepclust.augment.make_augmentation`: ``'weak'`` (random
    translation by a padded crop, and horizontal flip), ``'simclr'`` (random resized
    crop, flip, colour jitter and random grayscale, SimCLR's at its CIFAR-10 colour
    strength), ``'simclr-strong'`` (the same at SimCLR's full ImageNet colour strength),
    ``'strong'``
    (RandAugment-style operations and cutout, SCAN's strong policy) or ``'none'``; or a
    module (e.g. ``deepclust.augment.SimCLRAugmentation(scale=(0.5, 1.0))``) mapping a
    ``(B, C, H, W)`` batch in ``[0, 1]`` to an augmented batch of the same shape.
    Ignored for 2-D features.
    """
)

#: Parameter or attribute name -> its numpydoc entry: the header line ``name : type``
#: (``, default=...`` for parameters) and the description, indented by four spaces.
#: ``<name>_desc`` keys hold only the description of a parameter whose default differs
#: between estimators; the class writes the header line itself.
docdict: dict[str, str] = {}

# ---------------------------------------------------------------------- parameters
docdict["n_clusters_desc"] = _entry(
    """
    Number of clusters ``K``, at least 2 and at most the number of samples: the outputs
    of the clustering head, so ``labels_`` and ``predict`` take values in
    ``range(n_clusters)`` (some clusters may stay empty).
    """
)

docdict["backbone"] = _entry(
    """
    backbone : str or nn.Module, default='auto'
        The network that maps a sample to features. ``'auto'`` lets the recipe choose (see
        ``budget``): an MLP for 2-D features; on a CPU ``'convnet-small'`` (a small
        VGG-style conv net, 64 features); on a GPU ``'convnet'`` (128 features) for images
        up to 32 px and a ResNet-18 above. The other names are
        ``'convnet-small'``, ``'convnet'``, ``'resnet18'``, ``'resnet50'``, ``'alexnet'``
        and ``'mlp'``
        (:data:`deepclust.networks.BACKBONES`, which
        :func:`deepclust.networks.register_backbone` extends); any torchvision
        classification model as ``'torchvision:NAME'`` or ``NAME`` (``'vgg16'``,
        ``'efficientnet_b0'``, ...), and timm models as ``'timm:NAME'`` (see ``weights``).
        A :class:`torch.nn.Module`
        mapping a batch of samples to ``(B, F)`` features is copied, never trained in
        place; an estimator with a module backbone cannot be written as a model file
        (:func:`deepclust.io.save_model`), only pickled.
    """
)

docdict["weights"] = _entry(
    """
    weights : None, str, path-like or dict, default=None
        Weights the backbone starts from (``None``: random initialisation). One of:

        - a torchvision weights name of the backbone (``'IMAGENET1K_V1'``, ``'DEFAULT'``),
          downloaded by torchvision on a machine that is online (an offline machine gets
          an error saying where to download the file from);
        - a local file: a ``.pth``/``.pt``/``.pth.tar`` state dict (read with
          ``torch.load(weights_only=True)``, so it cannot run code, and also inside a
          checkpoint's ``'state_dict'`` or ``'model'``) or a ``.safetensors`` file;
        - a state dict.

        Keys may carry a ``module.``, ``backbone.``, ``model.`` or ``encoder.`` prefix, and
        the classification layer's keys are ignored. ``backbone`` must name the weights'
        architecture (not ``'auto'``); with weights, the names of torchvision models
        (``'resnet18'``, ``'resnet50'``, ``'alexnet'``, ``'vgg16'``, ...) build the
        standard torchvision architecture, which reads images normalised with ImageNet's
        statistics (grey images repeated to RGB) and, unless ``image_size`` is set, at the
        weights' size (224 px); so do ``'timm:NAME'`` backbones (with the optional timm
        package, normalised with the model's own statistics). Weights of a registered
        small backbone (e.g. a
        ``'convnet'`` state dict saved from another fit) are loaded as they are. Checked
        before any training.
    """
)

docdict["freeze_backbone"] = _entry(
    """
    freeze_backbone : bool, default=False
        Train only the heads, on features the backbone (with ``weights``, or a
        ``pretrained`` network where the method has one) computes once per fit, without
        augmentation: the fast path for a pretrained network on a CPU. The method then
        runs on those features as on a 2-D feature matrix (its recipe for features), and
        the fitted ``network_`` is the frozen backbone, a standardisation of its features
        and the trained heads. Needs ``weights`` (or ``pretrained``).
    """
)

docdict["pretrained"] = _entry(
    """
    pretrained : None, nn.Module, callable, fitted transformer, fitted deepclust \
estimator or fitted skorch net, default=None
        Where the method's starting features come from; ``None`` trains a SimCLR pretext
        network in ``fit`` (``pretext_epochs``). Otherwise one of:

        - an :class:`torch.nn.Module` mapping a ``(B, C, H, W)`` batch in ``[0, 1]`` to
          ``(B, F)`` features (a copy is used, never trained in place);
        - a callable doing the same (a fixed function, without weights);
        - a fitted scikit-learn transformer (e.g. a fitted
          :class:`~sklearn.decomposition.PCA`), applied to the flattened samples;
        - a fitted deepclust estimator: its backbone, with the input normalisation (and
          Sobel filter) it was trained with;
        - a fitted skorch net: its ``module_``.

        Anything else raises a :class:`TypeError` and an unfitted estimator or transformer
        a :class:`~sklearn.exceptions.NotFittedError`, both before any training.
        :func:`sklearn.base.clone` keeps this object rather than cloning it (a clone would
        be unfitted), so a cloned estimator, e.g. in a grid search, starts from the same
        features. An estimator with a ``pretrained`` object cannot be written as a model
        file (:func:`deepclust.io.save_model`), only pickled.
    """
)

docdict["augmentation_desc"] = _AUGMENTATION_FORMS

docdict["pretext_augmentation"] = (
    _entry(
        """
    pretext_augmentation : str or nn.Module, default='auto'
        Augmentation of the two views of every image in the SimCLR pretext. ``'auto'``:
        the recipe's, ``'simclr-strong'`` (SCAN's paper uses ``'simclr'``).
    """
    )
    + "\n"
    + textwrap.indent(_AUGMENTATION_FORMS, "    ")
)

docdict["pretext_epochs_desc"] = _entry(
    """
    Epochs of the SimCLR pretext stage (``>= 0``), trained only when ``pretrained`` is
    ``None``; every epoch sees two augmented views of each image. ``0`` skips it: the
    method then starts from the untrained network's features. ``'auto'``: the recipe's,
    800,000 images seen at 5,000 samples and ``budget='default'`` (160 epochs).
    """
)

docdict["budget"] = _entry(
    """
    budget : {'fast', 'default', 'thorough'}, default='default'
        How much training the method's recipe gives the data. The parameters left at
        ``'auto'`` (``image_size`` at ``None``) are resolved at ``fit`` from the number of
        samples, the image size and channels (or the feature width), the device and this
        budget (:mod:`deepclust.recipes`); values set explicitly win. Training length is
        counted in images seen and grows with the square root of the number of samples
        (SCAN's pretext faster above 5,000 samples), so small collections get more
        epochs than large ones; ``'fast'`` trains about a third as long as ``'default'``,
        ``'thorough'`` three times as long. The resolved settings are ``recipe_``.
    """
)

docdict["invariant_to"] = _entry(
    """
    invariant_to : 'auto', str, sequence of str or None, default='auto'
        What must not decide the clusters: any of ``'colour'``, ``'background'``,
        ``'brightness'``, ``'rotation'``, ``'flip'``, ``'scale'`` (a sequence, or one
        string with commas). ``'colour'``, ``'background'``, ``'brightness'`` and
        ``'rotation'`` change what the network reads
        (:class:`deepclust.networks.InvariantInput`: the border's plane subtracted, one
        channel of colour distance, per-image contrast normalisation, a canonical
        orientation), in training and in ``predict`` alike, and every augmentation of
        the fit acts on that view; ``'rotation'``, ``'flip'`` and ``'scale'`` add random
        transforms to every augmentation (:data:`deepclust.augment.INVARIANCES`). What
        was applied is ``recipe_['invariances']``. Images only.
        ``'auto'``: none, unless the clusters of the fit follow a statistic that an
        invariance removes (:attr:`nuisance_report_` flags it); then the estimator is
        fitted a second time with those invariances (with ``'colour'`` on colour images
        also ``'background'``; never from ``weights`` or a ``pretrained`` network), and
        a :class:`~deepclust.diagnostics.NuisanceWarning` says so.
        ``recipe_['invariances']['first_fit_flagged']`` keeps the first fit's flagged
        scores. ``None``: no invariance and no second fit.
    """
)

docdict["merge_to"] = _entry(
    """
    merge_to : int or None, default=None
        Overclustering with merge: train ``n_clusters`` clusters as usual, then merge
        them into ``merge_to`` (at least 2, below ``n_clusters``) at the end of ``fit``.
        Each trained cluster's prototype is the mean of its samples' L2-normalised
        features (``transform``); the prototypes of the non-empty clusters are grouped by
        average-linkage agglomeration on cosine distance. ``labels_``, ``predict``,
        ``predict_proba`` and ``score`` then use the merged clusters; the trained ones
        are mapped by ``merge_map_``. Off by default: SCAN trained with 20 clusters
        merged into 10 scored below training 10 directly on the digits (ACC 0.862 against
        0.936, mean of 3 seeds) and on 5,000 Fashion-MNIST images (0.633 against 0.650),
        ``docs/user_guide/n_clusters.rst``. None: no merging.
    """
)

docdict["pretext_lr"] = _entry(
    """
    pretext_lr : float or 'auto', default='auto'
        Learning rate (``> 0``) of the SimCLR pretext: SGD with Nesterov momentum 0.9,
        weight decay 1e-4 and a cosine schedule over ``pretext_epochs``, whatever
        ``optimizer`` and ``lr_schedule`` say. ``'auto'``: the recipe's, 0.2.
    """
)

docdict["temperature"] = _entry(
    """
    temperature : float or 'auto', default='auto'
        Temperature (``> 0``) of the pretext's NT-Xent loss on the 128-d projection: lower
        values weigh the hardest negatives of a batch more. ``'auto'``: the recipe's, 0.5
        (SCAN's SimCLR setup uses 0.1).
    """
)

docdict["device"] = _entry(
    """
    device : str, torch.device or None, default='auto'
        Where training and inference run: ``'auto'`` (or ``None``) picks CUDA when it is
        available and the CPU otherwise; or ``'cpu'``, ``'cuda'``, ``'cuda:N'``. ``fit``
        raises a :class:`ValueError` for a device that is not available; ``predict`` and
        ``transform`` fall back to the CPU with a :class:`RuntimeWarning` (a model fitted
        on a GPU, used on a laptop). ``device_`` is the device ``fit`` used.
    """
)

docdict["precision"] = _entry(
    """
    precision : {'auto', 'mixed', 'float32'}, default='auto'
        Floating-point precision of the forward passes in training and inference.
        ``'auto'`` uses autocast where the device computes the lower precision natively:
        bfloat16 on CUDA devices that support it (float16 with loss scaling on older
        ones) and on CPUs with AVX512-BF16 or AMX, float32 elsewhere. ``'mixed'`` uses
        autocast on any device; ``'float32'`` never does, which gives the same labels on
        every CPU (autocast rounds differently on different hardware).
    """
)

docdict["batch_size"] = _entry(
    """
    batch_size : int or 'auto', default='auto'
        Samples per optimiser step in every training stage (``>= 1``). ``'auto'``: the
        recipe's, a power of two up to 256 (SeLa 1,024; twice that on a GPU) with at least
        eight batches in the data. The passes over the data without gradients (feature
        extraction, label updates, ``predict``, ``transform``) use batches of at least 512
        on a CPU and 2,048 on a GPU.
    """
)

docdict["weight_decay"] = _entry(
    """
    weight_decay : float, default=1e-5
        Weight decay (``>= 0``) of the main training step's optimiser: an L2 penalty with
        SGD and Adam, decoupled with ``optimizer='adamw'``.
    """
)

docdict["optimizer"] = _entry(
    """
    optimizer : {'sgd', 'adam', 'adamw'} or None, default=None
        Optimiser of the method's main training step: SGD with Nesterov momentum, Adam or
        AdamW. ``None`` uses the optimiser of the method's reference code. Which step,
        and the reference's choice:
    """
)

docdict["lr_schedule"] = _entry(
    """
    lr_schedule : {'cosine', 'step', 'constant', 'auto'} or None
        Learning-rate schedule of the method's main training step, updated at every batch:
        ``'cosine'`` decays the rate from ``lr`` to zero over the stage, ``'step'`` divides
        it by 10 at 50% and 75% of the stage, ``'constant'`` keeps it. ``None`` uses the
        schedule of the method's reference code; ``'auto'`` the recipe's where it has one
        (else as ``None``). Which step, and the reference's choice:
    """
)

docdict["image_size"] = _entry(
    """
    image_size : int, tuple of (int, int) or None, default=None
        Size images are resized to, in pixels: a side length (``>= 4``) or ``(height,
        width)``. ``None`` lets the recipe choose: the images' own size (for files, their
        median size), scaled down, never up, to at most 20 px for grey and 32 px for
        colour images on a CPU and 64 px on a GPU, keeping the aspect ratio. Ignored for
        2-D features. ``predict`` and ``transform`` resize new images to
        the fitted size (``input_shape_``).
    """
)

docdict["on_bad_image"] = _entry(
    """
    on_bad_image : {'raise', 'skip'}, default='raise'
        What to do with image files that cannot be decoded (file input only): ``'raise'``
        raises a :class:`ValueError` listing them; ``'skip'`` leaves them out with a
        warning that lists them, so the fit (and ``labels_``) covers the other files.
    """
)

docdict["cache_dir"] = _entry(
    """
    cache_dir : str, path-like or None, default=None
        For a folder or a list of image files: keep their decoded pixels in this folder
        (made when missing), as one memory-mapped file per file list, image size and
        channel count, so that a later ``fit``, ``predict`` or ``transform`` on the same,
        unchanged files decodes none of them (``deepclust cluster --cache-dir``). A cache
        is written whole or not at all. ``None`` keeps decoded images in memory only, when
        they fit.
    """
)

docdict["random_state"] = _entry(
    """
    random_state : int, RandomState instance or None, default=None
        Seed of everything random in ``fit``: weight initialisation, initial labels,
        sample order, augmentation, k-means and neighbour draws. An int fixes the seed, a
        :class:`~numpy.random.RandomState` draws it, ``None`` draws a new one from NumPy's
        global generator at every ``fit``.
    """
)

docdict["verbose"] = _entry(
    """
    verbose : bool or int, default=False
        When true (any true value), show a progress bar per training epoch and per pass
        over the data (:class:`~deepclust.training.ProgressBar`) and print one line per
        epoch with its ``history_`` record (:class:`~deepclust.training.EpochLogger`).
    """
)

# ---------------------------------------------------------------------- fitted attributes
docdict["network_"] = _entry(
    """
    network_ : ClusteringNetwork
        The trained network, in eval mode: input normalisation (the training data's
        per-channel mean and standard deviation), backbone and clustering head(s).
        ``transform`` returns its backbone features.
    """
)

docdict["history_"] = _entry(
    """
    history_ : list of dict
        One record per training epoch of every stage, in training order: ``'stage'`` (the
        stage's name), ``'epoch'`` (the epoch's index within its stage), ``'loss'`` (the
        mean over the epoch's batches), ``'lr'`` (the rate of its last batch),
        ``'skipped_batches'``, ``'seconds'``, and the method's own entries (below).
    """
)

docdict["n_iter_"] = _entry(
    """
    n_iter_ : int
        Number of training epochs run, over all stages: ``len(history_)``.
    """
)

docdict["n_features_in_"] = _entry(
    """
    n_features_in_ : int
        Number of input features seen in ``fit``: the width of 2-D features, or
        ``C * H * W`` of the (resized) images.
    """
)

docdict["input_shape_"] = _entry(
    """
    input_shape_ : tuple of int
        Shape of one sample as the network reads it: ``(C, H, W)`` for images (after
        resizing), ``(n_features_in_,)`` for 2-D features.
    """
)

docdict["input_kind_"] = _entry(
    """
    input_kind_ : {'images', 'features'}
        What ``fit`` received: images, or a 2-D feature matrix. ``predict`` and
        ``transform`` expect the same kind.
    """
)

docdict["recipe_"] = _entry(
    """
    recipe_ : dict
        The settings the fit resolved (see ``budget``): ``'budget'``, ``'data'`` (the
        facts the recipe read: number of samples, kind, channels, native height and width
        or feature width, device type), ``'params'`` (the value used for every parameter
        the recipe covers) and ``'set_by_user'`` (those of them set explicitly, which the
        recipe left as they were).
    """
)

docdict["nuisance_report_"] = _entry(
    """
    nuisance_report_ : deepclust.diagnostics.NuisanceReport
        How much of ``labels_`` cheap image statistics explain (colour, hue, saturation,
        brightness, contrast, border colour, and for files width, height, aspect ratio,
        format and subfolder), chance-corrected: 0 unrelated, 1 determined by it. When
        one reaches the threshold, ``fit`` issues a
        :class:`~deepclust.diagnostics.NuisanceWarning` naming the ``invariant_to`` value
        that removes it; under ``invariant_to='auto'``, the report of the fit kept.
        Empty for 2-D features.
    """
)

docdict["merge_map_"] = _entry(
    """
    merge_map_ : ndarray of shape (n_clusters,)
        Only with ``merge_to``: the merged cluster (in ``range(merge_to)``) of each
        trained cluster; ``labels_`` and ``predict`` give merged clusters.
    """
)

docdict["n_clusters_trained_"] = _entry(
    """
    n_clusters_trained_ : int
        Only with ``merge_to``: the number of clusters trained (``n_clusters``) before
        merging.
    """
)

docdict["device_"] = _entry(
    """
    device_ : torch.device
        The device ``fit`` trained on (``device`` resolved); a pickled or loaded estimator
        reports the CPU.
    """
)

# ---------------------------------------------------------------------- method parameters
docdict["X_predict"] = _entry(
    """
    X : array-like, torch.Tensor, folder or list of image paths
        Samples of the kind the estimator was fitted on (see :meth:`fit`): images, resized
        to the fitted size and with its number of channels, or 2-D features of width
        ``n_features_in_``.
    """
)

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _fill(doc: str | None, where: str) -> str | None:
    """``doc`` with its placeholders replaced by :data:`docdict` entries."""
    if not doc:
        return doc
    indents: dict[str, str] = {}
    for line in doc.splitlines():
        for match in _PLACEHOLDER.finditer(line):
            prefix = line[: match.start()]
            name = match.group(1)
            if prefix.strip() or line[match.end() :].strip():
                raise ValueError(
                    f"{where}: the placeholder %({name})s must stand on a line of its own."
                )
            if name not in docdict:
                raise KeyError(
                    f"{where}: no shared docstring text named {name!r} in "
                    "deepclust.methods._docs.docdict."
                )
            if indents.setdefault(name, prefix) != prefix:
                raise ValueError(f"{where}: %({name})s is used at two indentations.")
    filled = {
        name: textwrap.indent(docdict[name], indent).lstrip(" \t")
        for name, indent in indents.items()
    }
    try:
        return doc % filled
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{where}: the docstring cannot be filled ({exc}); write a literal % as %%."
        ) from exc


def fill_doc(cls: type) -> type:
    """Fill the ``%(name)s`` placeholders of a class's docstrings (a class decorator).

    The class docstring and the docstrings of the public methods the class defines are
    ``%``-formatted with :data:`docdict`, each entry indented like its placeholder line.

    Parameters
    ----------
    cls : type
        The class whose docstrings to fill.

    Returns
    -------
    cls : type
        The same class, its docstrings filled in place.
    """
    cls.__doc__ = _fill(cls.__doc__, cls.__name__)
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        function = getattr(member, "__func__", getattr(member, "fget", member))
        if not inspect.isfunction(function) or not function.__doc__:
            continue
        doc = _fill(function.__doc__, f"{cls.__name__}.{name}")
        while function is not None:  # the function and what it wraps (e.g. fit)
            function.__doc__ = doc
            function = getattr(function, "__wrapped__", None)
        if isinstance(member, (classmethod, staticmethod)):
            member.__doc__ = doc
    return cls

"""numpydoc validation of the public API's docstrings: parameters documented, described, in
order, and return values described.

Each object is a test of its own, so a failure names it and lists numpydoc's messages.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from numpydoc.validate import validate

import deepclust.augment
import deepclust.datasets
import deepclust.diagnostics
import deepclust.distributed
import deepclust.integrations.skorch
import deepclust.io
import deepclust.metrics._label_free
import deepclust.model_selection
import deepclust.training
from deepclust.methods import ESTIMATOR_NAMES, FitState, _registry
from deepclust.methods._docs import docdict

#: Parameters not documented (PR01), unknown ones documented (PR02), in the wrong order
#: (PR03), without a description (PR07), with a wrong ``name : type`` colon (PR10), and
#: return values without a description (RT03).
CODES = ("PR01", "PR02", "PR03", "PR07", "PR10", "RT03")

#: Public methods of the estimators, where a class has them.
ESTIMATOR_METHODS = (
    "fit",
    "predict",
    "predict_proba",
    "transform",
    "score",
    "fit_predict",
    "fit_transform",
    "pretrained_transform",
    "from_sela_checkpoint",
)

#: Errors numpydoc reports wrongly, by object: it drops a first parameter named ``cls``
#: from every signature, as if the function were a classmethod.
FALSE_POSITIVES = {
    "deepclust.methods.register_method": {("PR02", "Unknown parameters {'cls'}")},
}

#: Errors of files owned elsewhere, not yet fixed; shrink this, never grow it.
PENDING = {
    "deepclust.io.save_model": {"RT03"},
    "deepclust.io.model_paths": {"RT03"},
}


def _public_api() -> list[str]:
    names = []
    for cls_name in ESTIMATOR_NAMES:
        cls = getattr(deepclust, cls_name)
        names.append(f"deepclust.{cls_name}")
        names += [
            f"deepclust.{cls_name}.{method}" for method in ESTIMATOR_METHODS if hasattr(cls, method)
        ]
    names += [
        f"deepclust.methods.{name}"
        for name in _registry.__all__
        if inspect.isclass(getattr(_registry, name)) or inspect.isfunction(getattr(_registry, name))
    ]
    names.append("deepclust.methods.FitState")
    names += [
        f"deepclust.methods.FitState.{name}"
        for name, member in vars(FitState).items()
        if not name.startswith("_") and inspect.isfunction(member)
    ]
    names += [
        f"deepclust.io.{name}"
        for name in deepclust.io.__all__
        if inspect.isfunction(getattr(deepclust.io, name))
    ]
    names += [
        f"deepclust.diagnostics.{name}"
        for name in deepclust.diagnostics.__all__
        if inspect.isfunction(getattr(deepclust.diagnostics, name))
    ]
    names += [
        "deepclust.augment.check_invariances",
        "deepclust.augment.with_invariances",
        "deepclust.datasets.recolour_images",
        "deepclust.datasets.rotate_images",
    ]
    names.append("deepclust.networks.InvariantInput")
    names += [
        "deepclust.integrations.skorch.to_classifier",
        "deepclust.integrations.skorch.EstimatorInput",
        "deepclust.integrations.skorch.BackboneClassifier",
        "deepclust.integrations.skorch.BackboneClassifier.features",
        "deepclust.integrations.skorch.BackboneClassifier.forward",
        "deepclust.integrations.skorch.BackboneClassifier.train",
        "deepclust.training.TensorBoardLogger",
        "deepclust.training.TensorBoardLogger.on_train_begin",
        "deepclust.training.TensorBoardLogger.on_epoch_end",
        "deepclust.training.TensorBoardLogger.on_stage_end",
        "deepclust.training.TensorBoardLogger.on_train_end",
        "deepclust.sinkhorn.sinkhorn_solve",
        "deepclust.cluster.kmeans",
        "deepclust.data.read_image",
        "deepclust.data.as_source",
        "deepclust.data.FileSource",
        "deepclust.data._decode.draft_jpeg",
        "deepclust.data._disk_cache.cache_key",
        "deepclust.data._disk_cache.read_cache",
        "deepclust.data._disk_cache.CacheWriter",
        "deepclust.data._disk_cache.CacheWriter.keep",
        "deepclust.data._disk_cache.CacheWriter.commit",
    ]
    names += [
        f"deepclust.distributed.{name}"
        for name in deepclust.distributed.__all__
        if inspect.isfunction(getattr(deepclust.distributed, name))
    ]
    names += [f"deepclust.metrics.{name}" for name in deepclust.metrics._label_free.__all__]
    names += [f"deepclust.model_selection.{name}" for name in deepclust.model_selection.__all__]
    names += [
        f"deepclust.model_selection.NClustersSearch.{name}"
        for name in ("mean_scores", "to_dict", "plot")
    ]
    # The autograd function's class is never instantiated (its signature is Function's).
    names += [
        "deepclust.distributed.GatherWithGradient.forward",
        "deepclust.distributed.GatherWithGradient.backward",
    ]
    return names


PUBLIC_API = _public_api()


def test_the_list_covers_the_api():
    assert "deepclust.SCANClusterer.fit" in PUBLIC_API
    assert "deepclust.ClusterFitTransformer.pretrained_transform" in PUBLIC_API
    assert "deepclust.SelfLabelClusterer.from_sela_checkpoint" in PUBLIC_API
    assert "deepclust.methods.MethodSpec" in PUBLIC_API
    assert "deepclust.methods.register_method" in PUBLIC_API
    assert "deepclust.methods.FitState.fitted_attributes" in PUBLIC_API
    assert "deepclust.io.load_model" in PUBLIC_API
    assert "deepclust.integrations.skorch.to_classifier" in PUBLIC_API
    assert "deepclust.distributed.shard_indices" in PUBLIC_API
    assert "deepclust.metrics.augmentation_agreement" in PUBLIC_API
    assert "deepclust.model_selection.choose_n_clusters" in PUBLIC_API


@pytest.mark.parametrize("name", PUBLIC_API)
def test_docstring(name):
    ignored = FALSE_POSITIVES.get(name, set())
    pending = PENDING.get(name, set())
    errors = [
        f"{code}: {message}"
        for code, message in validate(name)["errors"]
        if code in CODES and (code, message) not in ignored and code not in pending
    ]
    assert not errors, f"{name}:\n  " + "\n  ".join(errors)


@pytest.mark.parametrize("name", sorted(PENDING))
def test_pending_errors_are_still_there(name):
    """An entry of :data:`PENDING` that is fixed must leave the list."""
    codes = {code for code, _ in validate(name)["errors"]}
    assert PENDING[name] <= codes, f"{name} no longer has {PENDING[name] - codes}; remove it"


def test_every_placeholder_is_filled():
    """``fill_doc`` left no ``%(name)s`` in the public docstrings."""
    unfilled = [name for name in PUBLIC_API if "%(" in (_object(name).__doc__ or "")]
    assert unfilled == []


def test_every_shared_text_is_used():
    methods = Path(deepclust.__file__).parent / "methods"
    sources = "".join(path.read_text(encoding="utf-8") for path in methods.glob("*.py"))
    assert [key for key in docdict if f"%({key})s" not in sources] == []


def _object(name: str):
    module, _, rest = name.partition(".")
    obj = __import__(module)
    for part in rest.split("."):
        obj = getattr(obj, part)
    return obj

"""Declared invariances (``invariant_to``), the input filter they add, the nuisance
warning of ``fit`` and of the command, and the recoloured and rotated data variants."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from deepclust import DeepClusterEstimator, SCANClusterer, SelfLabelClusterer
from deepclust.augment import (
    INVARIANCES,
    InvarianceAugmentation,
    InvariantView,
    check_invariances,
    make_augmentation,
    with_invariances,
)
from deepclust.cli import main
from deepclust.datasets import recolour_images, rotate_images
from deepclust.diagnostics import NuisanceWarning
from deepclust.io import load_model, save_model
from deepclust.methods import _stages
from deepclust.networks import InvariantInput
from deepclust.recipes import recipe_for

TINY_SCAN = dict(n_clusters=2, max_epochs=1, pretext_epochs=1, n_head_candidates=0, batch_size=32)


def two_colour_images(n: int = 64, size: int = 16, seed: int = 0):
    """Random grey textures on a red or a blue image: any 2-clustering follows colour."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.uniform(0, 0.3, (n, size, size, 3))
    X[y == 0, ..., 0] += 0.7
    X[y == 1, ..., 2] += 0.7
    return (X * 255).astype(np.uint8), y


def masks(n: int = 8, size: int = 24, seed: int = 0) -> np.ndarray:
    """Grey images of random bright blobs on black."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[:size, :size]
    centres = rng.uniform(6, size - 6, (n, 2))
    radius = rng.uniform(3, 6, n)
    distance = np.hypot(ys - centres[:, 0, None, None], xs - centres[:, 1, None, None])
    return (distance < radius[:, None, None]).astype(np.float32)


# ---------------------------------------------------------------- checking the values
@pytest.mark.parametrize(
    "value, expected",
    [
        (None, ()),
        ("rotation", ("rotation",)),
        ("rotation, colour", ("colour", "rotation")),
        (["scale", "color"], ("colour", "scale")),
    ],
)
def test_check_invariances_accepts_names_and_orders_them(value, expected):
    assert check_invariances(value) == expected


@pytest.mark.parametrize("value", ["hue", ["colour", 3], 7])
def test_bad_invariances_are_refused_before_training(value, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(SCANClusterer, "_fit_state_class", no_training)
    X, _ = two_colour_images()
    with pytest.raises(ValueError, match="invariant_to|not an invariance") as error:
        SCANClusterer(n_clusters=2, invariant_to=value).fit(X)
    if value == "hue":
        assert "'colour'" in str(error.value) and "'rotation'" in str(error.value)


def test_invariances_need_images():
    X = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    with pytest.raises(ValueError, match="needs images"):
        SCANClusterer(n_clusters=2, invariant_to="colour").fit(X)


# ---------------------------------------------------------------- recipe and augmentation
@pytest.mark.parametrize("name", list(INVARIANCES))
def test_every_invariance_changes_the_recipe(name):
    X, _ = two_colour_images()
    plain = recipe_for(SCANClusterer(n_clusters=2), X)["invariances"]
    declared = recipe_for(SCANClusterer(n_clusters=2, invariant_to=name), X)["invariances"]
    assert plain == {"declared": [], "input_filter": None, "augmentation": {}}
    assert declared["declared"] == [name]
    assert declared["augmentation"] == {name: INVARIANCES[name]}
    has_filter = name in ("colour", "background", "brightness", "rotation")
    assert (declared["input_filter"] is not None) == has_filter


def test_colour_invariance_gives_the_recipe_of_grey_images():
    """The network reads one channel, so the recipe takes grey images' settings (20 px on
    a CPU for 28 px images, against 28 px for colour) and records the channel count."""
    X = np.random.default_rng(0).integers(0, 256, (40, 28, 28, 3), dtype=np.uint8)
    colour = recipe_for(SCANClusterer(n_clusters=2, device="cpu"), X)
    grey = recipe_for(SCANClusterer(n_clusters=2, device="cpu", invariant_to="colour"), X)
    background = recipe_for(SCANClusterer(n_clusters=2, device="cpu", invariant_to="background"), X)
    assert tuple(colour["params"]["image_size"]) == (28, 28)
    assert tuple(background["params"]["image_size"]) == (28, 28)
    assert tuple(grey["params"]["image_size"]) == (20, 20)
    assert grey["data"]["n_channels"] == 3 and grey["data"]["input_channels"] == 1


@pytest.mark.parametrize("name", list(INVARIANCES))
def test_every_invariance_transforms_a_batch(name):
    x = torch.from_numpy(two_colour_images(32)[0]).permute(0, 3, 1, 2).float() / 255
    identity = make_augmentation("none")
    torch.manual_seed(0)
    out = with_invariances(identity, [name])(x)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    changed = (out - x).abs().flatten(1).amax(1)
    assert (changed > 0.05).float().mean() > 0.5, changed
    assert with_invariances(identity, []) is identity
    assert InvarianceAugmentation([])(x) is x


def test_colour_view_keeps_an_object_of_equal_brightness():
    """Greyscale would erase a red disc on a green background of the same luma; the view
    the augmentations see keeps it."""
    disc = torch.from_numpy(masks(4)).bool()[:, None]
    red, green = torch.tensor([0.6, 0.0, 0.0]), torch.tensor([0.0, 0.299 * 0.6 / 0.587, 0.0])
    x = torch.where(disc, red.view(1, 3, 1, 1), green.view(1, 3, 1, 1))
    view = InvariantView(["colour", "background"])(x)
    inside, outside = view[disc.expand_as(view)].mean(), view[~disc.expand_as(view)].mean()
    assert inside - outside > 0.5


def test_rotation_invariance_turns_the_images():
    x = torch.zeros(64, 1, 21, 21)
    x[:, :, 10, 10:] = 1.0  # a ray from the centre to the right
    torch.manual_seed(0)
    out = InvarianceAugmentation(["rotation"])(x)
    ys, xs = torch.meshgrid(torch.arange(21.0) - 10, torch.arange(21.0) - 10, indexing="ij")
    angles = torch.atan2((out[:, 0] * ys).sum((1, 2)), (out[:, 0] * xs).sum((1, 2)))
    quadrants = torch.bincount(((angles + torch.pi) // (torch.pi / 2)).long().clamp(0, 3))
    assert len(quadrants) == 4 and quadrants.min() >= 8, quadrants  # all four directions


def test_the_fit_augments_with_the_declared_invariances(monkeypatch):
    seen = []
    original = _stages.with_invariances

    def spy(augmentation, invariances):
        module = original(augmentation, invariances)
        seen.append(tuple(invariances))
        return module

    monkeypatch.setattr(_stages, "with_invariances", spy)
    X, _ = two_colour_images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NuisanceWarning)
        SCANClusterer(**TINY_SCAN, invariant_to="rotation,flip", random_state=0).fit(X)
    # the pretext, SCAN and self-labelling steps all build their augmentation with them
    assert len(seen) >= 2 and set(seen) == {("rotation", "flip")}


# ---------------------------------------------------------------- the input filter
def test_background_and_colour_filter_ignores_colours_and_gradients():
    mask = torch.from_numpy(masks(6))[:, None]
    rng = np.random.default_rng(1)
    ramp = torch.linspace(0, 1, 24).view(1, 1, 1, 24)
    views = []
    for _ in range(2):
        start = torch.from_numpy(rng.uniform(0, 1, (6, 3, 1, 1))).float()
        end = torch.from_numpy(rng.uniform(0, 1, (6, 3, 1, 1))).float()
        colour = torch.from_numpy(rng.uniform(0, 1, (6, 3, 1, 1))).float()
        background = start + (end - start) * ramp
        views.append(background * (1 - mask) + colour * mask)
    out = [InvariantInput(["background", "colour"])(v) for v in views]
    assert out[0].shape == (6, 1, 24, 24)
    correlation = torch.nn.functional.cosine_similarity(out[0].flatten(1), out[1].flatten(1))
    assert correlation.min() > 0.97, correlation
    grey = InvariantInput(["brightness"])(views[0])
    assert grey.shape == views[0].shape
    assert torch.allclose(grey.mean((2, 3)), torch.zeros(6, 3), atol=1e-4)


def test_rotation_filter_gives_the_same_image_at_any_angle():
    bar = torch.zeros(1, 1, 21, 21)
    bar[:, :, 4:17, 9:12] = 1.0  # an upright bar...
    bar[:, :, 4:7, 12:15] = 1.0  # ...with a foot on one end (a third moment)
    turned = torch.from_numpy(rotate_images(bar[:, 0].repeat(6, 1, 1).numpy(), 0))[:, None]
    out = InvariantInput(["rotation"])(torch.cat([bar, turned]))
    similarity = torch.nn.functional.cosine_similarity(out[:1].flatten(1), out[1:].flatten(1))
    raw = torch.nn.functional.cosine_similarity(bar.flatten(1), turned.flatten(1))
    assert similarity.min() > 0.85 and raw.min() < 0.5, (similarity, raw)


def test_an_object_touching_the_border_does_not_bend_the_background():
    ramp = torch.linspace(0.2, 0.6, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16).clone()
    x = ramp.clone()
    x[:, :, 4:12, :3] = 1.0  # a bright bar touching the left edge
    out = InvariantInput(["background"])(x)
    assert out[..., :, 5:].abs().max() < 0.02  # the gradient is gone beside the bar
    assert out[..., 4:12, :3].min() > 0.3


@pytest.mark.parametrize(
    "cls, extra",
    [(SCANClusterer, TINY_SCAN), (SelfLabelClusterer, {}), (DeepClusterEstimator, {})],
)
def test_the_network_reads_through_the_filter_and_the_file_keeps_it(cls, extra, tmp_path):
    X, _ = two_colour_images()
    params = {"n_clusters": 2, "max_epochs": 1, "batch_size": 32, **extra}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NuisanceWarning)
        est = cls(**params, invariant_to=("colour", "background"), random_state=0).fit(X)
    assert isinstance(est.network_.input_filter, InvariantInput)
    assert est.recipe_["invariances"]["input_filter"] == "invariant:background,colour"
    save_model(est, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded.network_.input_filter, InvariantInput)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


# ---------------------------------------------------------------- the warning
def test_fit_warns_when_the_clusters_follow_colour():
    X, _ = two_colour_images()
    with pytest.warns(NuisanceWarning, match="invariant_to=\\('colour',\\)"):
        est = SCANClusterer(**TINY_SCAN, invariant_to=None, random_state=0).fit(X)
    assert est.nuisance_report_.top.option in ("colour", "background")
    assert est.nuisance_report_.top.score > 0.9
    assert est.recipe_["invariances"]["declared"] == []


def _count_passes(monkeypatch) -> list:
    passes = []
    original = SCANClusterer._fit_checked

    def counting(self, *args):
        passes.append(self._invariances())
        return original(self, *args)

    monkeypatch.setattr(SCANClusterer, "_fit_checked", counting)
    return passes


def test_auto_fits_again_with_the_invariances_the_clusters_need(monkeypatch):
    X, _ = two_colour_images()
    passes = _count_passes(monkeypatch)
    again = "fitted again with invariant_to=\\('colour', 'background'\\)"
    with pytest.warns(NuisanceWarning, match=again) as caught:
        est = SCANClusterer(**TINY_SCAN, random_state=0).fit(X)
    assert {w.filename for w in caught} == {__file__}  # points at the caller's line
    assert passes == [(), ("colour", "background")]
    assert est.invariant_to == "auto" and not hasattr(est, "_auto_invariances")
    invariances = est.recipe_["invariances"]
    assert invariances["declared"] == ["colour", "background"]
    assert invariances["first_fit_flagged"][0]["option"] in ("colour", "background")
    assert invariances["first_fit_flagged"][0]["score"] > 0.9
    declared = SCANClusterer(**TINY_SCAN, invariant_to="colour,background", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NuisanceWarning)
        declared.fit(X)
    np.testing.assert_array_equal(est.labels_, declared.labels_)
    np.testing.assert_array_equal(est.predict(X), declared.predict(X))


def test_auto_fits_once_when_nothing_is_flagged(monkeypatch):
    X = masks(64, size=16)
    passes = _count_passes(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NuisanceWarning)
        est = SCANClusterer(**TINY_SCAN, random_state=0).fit(X)
    assert passes == [()]
    assert est.recipe_["invariances"]["declared"] == []
    assert "first_fit_flagged" not in est.recipe_["invariances"]


def test_command_warns_once_on_stderr_only(tmp_path, capsys):
    X, _ = two_colour_images(48)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(X):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    args = ["cluster", folder, "--out", tmp_path / "out", "--n-clusters", 2, "--epochs", 1]
    args += ["--device", "cpu", "--quiet", "--invariant-to", "none"]
    assert main([str(a) for a in args]) == 0
    out, err = capsys.readouterr()
    assert err.count("the clusters follow") == 1, err
    assert "--invariant-to" in err and "the clusters follow" not in out
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["nuisance"]["scores"][0]["score"] > 0.9
    assert run["recipe"]["invariances"]["declared"] == []
    assert "What the clusters follow" in (tmp_path / "out" / "report.html").read_text()

    auto = args[:3] + [tmp_path / "auto"] + args[4:-2]
    assert main([str(a) for a in auto]) == 0
    out, err = capsys.readouterr()
    assert "fitted again with invariant_to=('colour', 'background')" in err, err
    run = json.loads((tmp_path / "auto" / "run.json").read_text())
    assert run["recipe"]["invariances"]["declared"] == ["colour", "background"]


def test_command_refuses_a_bad_invariance(tmp_path, capsys):
    args = ["cluster", "digits", "--out", str(tmp_path / "o"), "--n-clusters", "3"]
    with pytest.raises(SystemExit):
        main(args + ["--invariant-to", "colour,size"])
    err = capsys.readouterr().err
    assert "'size'" in err and "not an invariance" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_command_records_the_invariances(tmp_path):
    args = ["cluster", "digits", "--out", str(tmp_path / "o"), "--n-clusters", "3"]
    args += ["--epochs", "1", "--device", "cpu", "--quiet", "--invariant-to", "rotation"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NuisanceWarning)
        assert main(args) == 0
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["recipe"]["invariances"]["declared"] == ["rotation"]
    assert "rotation" in (tmp_path / "o" / "report.html").read_text()


# ---------------------------------------------------------------- data variants
def test_recoloured_images_keep_the_shape_and_vary_the_colours():
    grey = (masks(50) * 255).astype(np.uint8)
    colour = recolour_images(grey, random_state=0)
    assert colour.shape == (50, 24, 24, 3) and colour.dtype == np.uint8
    corners = colour[:, 0, 0].astype(float)
    assert corners.std(0).min() > 40  # backgrounds differ from image to image
    recovered = InvariantInput(["background", "colour"])(
        torch.from_numpy(colour).permute(0, 3, 1, 2).float() / 255
    )[:, 0]
    inside = recovered[torch.from_numpy(grey) > 0].mean()
    outside = recovered[torch.from_numpy(grey) == 0].abs().mean()
    assert inside > 0.8 and outside < 0.1  # the grey image again, background at 0


def test_rotated_images_keep_their_mass():
    grey = (masks(20) * 255).astype(np.uint8)
    rotated = rotate_images(grey, random_state=0)
    assert rotated.shape == grey.shape and rotated.dtype == np.uint8
    assert not np.array_equal(rotated, grey)
    np.testing.assert_allclose(rotated.sum((1, 2)), grey.sum((1, 2)), rtol=0.15)

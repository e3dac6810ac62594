"""Image files: bit depth, EXIF orientation, channel count, what a folder scan leaves out."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.cluster import KMeans

from deepclust.data import as_source, list_image_files

needs_symlinks = pytest.mark.skipif(
    sys.platform == "win32", reason="creating symlinks needs privileges on Windows"
)


# ---------------------------------------------------------------------------------------
# Bit depth


def _sixteen_bit_values(rng: np.random.Generator, bright: bool) -> np.ndarray:
    """An 8x8 uint16 image around 5,000 (dark) or 60,000 (bright), with some texture."""
    centre = 60_000 if bright else 5_000
    return (centre + rng.integers(-4_000, 4_000, size=(8, 8))).astype(np.uint16)


def _dark_and_bright_folders(root, ext: str = "png", dtype: str = "<u2"):
    """Folders of the same 6 dark and 6 bright images, in 16 bits and in 8 bits."""
    rng = np.random.default_rng(0)
    deep, shallow = root / "sixteen", root / "eight"
    deep.mkdir()
    shallow.mkdir()
    values = [_sixteen_bit_values(rng, bright=i >= 6) for i in range(12)]
    for i, image in enumerate(values):
        Image.fromarray(image.astype(dtype)).save(deep / f"img_{i:02d}.{ext}")
        eight = np.round(image / 257.0).astype(np.uint8)  # 65535 / 255 == 257
        Image.fromarray(eight).save(shallow / f"img_{i:02d}.png")
    return deep, shallow


@pytest.mark.parametrize("ext, dtype", [("png", "<u2"), ("tif", "<u2"), ("tif", ">u2")])
def test_sixteen_bit_images_are_scaled_like_their_eight_bit_copies(tmp_path, ext, dtype):
    deep, shallow = _dark_and_bright_folders(tmp_path, ext, dtype)
    with Image.open(next(deep.iterdir())) as probe:
        assert probe.mode.startswith("I;16")  # really stored in 16 bits
    loaded = as_source(str(deep)).load()
    reference = as_source(str(shallow)).load()
    assert loaded.shape == reference.shape == (12, 1, 8, 8)  # the files' own size
    assert float((loaded - reference).abs().max()) <= 1 / 255 + 1e-6
    means = loaded.mean(dim=(1, 2, 3))
    assert float(means[:6].max()) < 0.15 and float(means[6:].min()) > 0.8


def test_sixteen_bit_folder_separates_dark_from_bright(tmp_path):
    deep, _ = _dark_and_bright_folders(tmp_path)
    source = as_source(str(deep), image_size=8)
    pixels = source.load().reshape(len(source), -1).numpy()
    assert len(np.unique(pixels)) > 20  # not clipped to one value
    labels = KMeans(2, n_init=3, random_state=0).fit(pixels).labels_
    assert len(set(labels[:6])) == 1 and len(set(labels[6:])) == 1
    assert labels[0] != labels[-1]


def test_sixteen_bit_images_without_the_cache(tmp_path, monkeypatch):
    import deepclust.data._sources as sources

    deep, shallow = _dark_and_bright_folders(tmp_path)
    monkeypatch.setattr(sources, "FILE_CACHE_BYTES", 10)
    source = as_source(str(deep), image_size=8)
    assert source._cache is None
    reference = as_source(str(shallow), image_size=8).load()
    assert float((source.load() - reference).abs().max()) <= 1 / 255 + 1e-6


def test_sixteen_bit_pngs_read_as_32_bit_integers_are_scaled_by_16_bits(tmp_path, monkeypatch):
    """Some Pillow versions read 16-bit PNGs as mode ``I``; the file's depth still counts."""
    from PIL import PngImagePlugin

    deep, shallow = _dark_and_bright_folders(tmp_path)
    open_png = PngImagePlugin.PngImageFile._open

    def open_as_older_pillow(self):
        open_png(self)
        if self.mode == "I;16":
            self._mode = "I"  # decoded from the same I;16B raw data into 32-bit integers

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "_open", open_as_older_pillow)
    with Image.open(next(deep.iterdir())) as probe:
        assert probe.mode == "I"
    loaded = as_source(str(deep), image_size=8).load()
    reference = as_source(str(shallow), image_size=8).load()
    assert float((loaded - reference).abs().max()) <= 1 / 255 + 1e-6


def test_thirty_two_bit_integer_images_use_their_type_range(tmp_path):
    image = np.zeros((4, 4), np.int32)
    image[:, 1] = 2**30
    image[:, 2:] = 2**31 - 1
    Image.fromarray(image).save(tmp_path / "wide.tif")
    with Image.open(tmp_path / "wide.tif") as probe:
        assert probe.mode == "I"
    loaded = as_source([str(tmp_path / "wide.tif")], image_size=4).load()[0, 0]
    np.testing.assert_allclose(loaded[0].numpy(), [0.0, 0.5, 1.0, 1.0], atol=1 / 255)


def test_float_images_in_unit_range_are_kept_and_others_stretched(tmp_path):
    unit = np.linspace(0.0, 1.0, 16, dtype=np.float32).reshape(4, 4) * 0.5  # 0..0.5
    Image.fromarray(unit).save(tmp_path / "a_unit.tif")
    Image.fromarray(unit * 4000.0 - 100.0).save(tmp_path / "b_wide.tif")
    loaded = as_source(str(tmp_path), image_size=4).load()[:, 0]
    np.testing.assert_allclose(loaded[0].numpy(), unit, atol=1 / 255)
    stretched = (unit - unit.min()) / (unit.max() - unit.min())  # min-max per image
    np.testing.assert_allclose(loaded[1].numpy(), stretched, atol=1 / 255)


def test_sixteen_bit_thumbnails_are_not_white(tmp_path):
    from deepclust.cli._inputs import load_input

    deep, _ = _dark_and_bright_folders(tmp_path)
    loaded = load_input(str(deep), image_size=8)
    dark, bright = loaded.thumbnails(np.array([0, 11]))
    assert np.asarray(dark.convert("L")).mean() < 40
    assert np.asarray(bright.convert("L")).mean() > 200


# ---------------------------------------------------------------------------------------
# EXIF orientation


def _asymmetric_image() -> Image.Image:
    """A 24x16 (W x H) colour image with a bright block in its top-left corner."""
    array = np.zeros((16, 24, 3), np.uint8)
    array[..., 2] = np.linspace(0, 255, 24, dtype=np.uint8)[None, :]
    array[:6, :8] = (255, 255, 255)
    return Image.fromarray(array)


# The stored pixels for each tag: what a viewer turns upright by applying the tag.
_STORED = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def _upright_and_rotated_jpegs(folder, orientation: int):
    upright = _asymmetric_image()
    upright.save(folder / "a_upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    upright.transpose(_STORED[orientation]).save(folder / "b_rotated.jpg", quality=95, exif=exif)
    return folder / "a_upright.jpg", folder / "b_rotated.jpg"


@pytest.mark.parametrize("orientation", [6, 8])
@pytest.mark.parametrize("cached", [True, False])
def test_exif_orientation_is_applied(tmp_path, monkeypatch, orientation, cached):
    import deepclust.data._sources as sources

    if not cached:
        monkeypatch.setattr(sources, "FILE_CACHE_BYTES", 10)
    _upright_and_rotated_jpegs(tmp_path, orientation)
    source = as_source(str(tmp_path), image_size=(16, 24))
    assert (source._cache is not None) == cached
    upright, rotated = source.load()
    assert float((upright - rotated).abs().mean()) < 0.03


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_in_thumbnails_and_montage_tiles(tmp_path, orientation):
    from deepclust.cli._inputs import load_input
    from deepclust.cli._montage import _tile

    upright_path, rotated_path = _upright_and_rotated_jpegs(tmp_path, orientation)
    upright, rotated = load_input(str(tmp_path), image_size=8).thumbnails(np.array([0, 1]))
    assert upright.size == rotated.size == (24, 16)
    difference = np.abs(np.asarray(upright, float) - np.asarray(rotated, float)).mean()
    assert difference < 8
    with Image.open(upright_path) as a, Image.open(rotated_path) as b:
        tiles = np.asarray(_tile(a, 24), float), np.asarray(_tile(b, 24), float)
    assert np.abs(tiles[0] - tiles[1]).mean() < 8


# ---------------------------------------------------------------------------------------
# Channels


def _grey_then_colour_folder(root):
    """20 grey files, then 2 colour ones (pure red, pure green) that sort after them."""
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(
            root / f"a_grey_{i:02d}.png"
        )
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0)]):
        Image.new("RGB", (8, 8), colour).save(root / f"z_colour_{i}.png")
    return root


@pytest.mark.parametrize("cached", [True, False])
def test_colour_files_after_grey_ones_make_the_collection_colour(tmp_path, monkeypatch, cached):
    import deepclust.data._sources as sources

    if not cached:
        monkeypatch.setattr(sources, "FILE_CACHE_BYTES", 10)
    folder = _grey_then_colour_folder(tmp_path)
    source = as_source(str(folder), image_size=8)
    assert source.shape == (3, 8, 8)
    images = source.load()
    assert torch.equal(images[0, 0], images[0, 1]) and torch.equal(images[0, 0], images[0, 2])
    with Image.open(folder / "a_grey_00.png") as grey:
        np.testing.assert_allclose(images[0, 0].numpy(), np.asarray(grey) / 255.0, atol=1e-6)
    red, green = images[20].mean(dim=(1, 2)), images[21].mean(dim=(1, 2))
    np.testing.assert_allclose(red.numpy(), [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(green.numpy(), [0.0, 1.0, 0.0], atol=1e-6)


def test_cli_input_of_grey_then_colour_files_is_colour(tmp_path):
    from deepclust.cli._inputs import load_input

    loaded = load_input(str(_grey_then_colour_folder(tmp_path)), image_size=8)
    assert loaded.extra["channels"] == 3
    assert tuple(loaded.data.shape) == (22, 3, 8, 8)


def test_reading_colour_files_as_grey_says_so(tmp_path):
    folder = _grey_then_colour_folder(tmp_path)
    with pytest.warns(UserWarning, match="2 of 22 image files are in colour"):
        source = as_source(str(folder), image_size=8, n_channels=1)
    assert source.shape == (1, 8, 8)


# ---------------------------------------------------------------------------------------
# Which files a folder scan takes, and counting those it leaves out


def _png(path, value: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def _cluttered_folder(root):
    """One image among files and folders that are not part of the collection."""
    _png(root / "keep" / "a.png", 10)
    (root / "keep" / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    _png(root / ".hidden.png")
    _png(root / ".thumbnails" / "t.png")
    _png(root / ".thumbnails" / "u.png")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "notes.txt").write_text("not an image")
    return root


def test_hidden_and_appledouble_files_are_left_out(tmp_path):
    root = _cluttered_folder(tmp_path)
    assert list_image_files(root) == [str(root / "keep" / "a.png")]
    source = as_source(str(root), image_size=8)  # the AppleDouble file is not an image
    assert source.relative_names() == [os.path.join("keep", "a.png")]


def test_left_out_files_are_counted(tmp_path):
    from deepclust.data import scan_image_folder

    root = _cluttered_folder(tmp_path)
    paths, skipped = scan_image_folder(root)
    assert paths == [str(root / "keep" / "a.png")]
    assert skipped == {"AppleDouble": 1, "hidden": 2, "hidden folder": 1, "non-image": 1}
    source = as_source(str(root), image_size=8)
    assert source.skipped == skipped
    assert source.summary() == (
        "1 image; left out: 2 hidden, 1 AppleDouble, 1 hidden folder, 1 non-image"
    )


def test_folder_without_images_names_what_was_left_out(tmp_path):
    _png(tmp_path / ".hidden.png")
    with pytest.raises(ValueError, match="no image files.*left out: 1 hidden"):
        as_source(str(tmp_path))


def test_skipped_unreadable_files_are_counted(tmp_path):
    from deepclust.cli._inputs import load_input

    for i in range(1200):
        _png(tmp_path / f"img_{i:04d}.png", i % 256)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / ".hidden.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="broken.png"):
        source = as_source(str(tmp_path), image_size=8, on_bad_image="skip")
    assert source.skipped == {"hidden": 1, "unreadable": 1}
    with pytest.warns(UserWarning, match="broken.png"):
        loaded = load_input(str(tmp_path), image_size=8, on_bad_image="skip")
    assert len(loaded) == 1200
    assert loaded.summary == "1,200 images; left out: 1 hidden, 1 unreadable"


def test_summary_of_a_clean_folder(image_folder):
    from deepclust.cli._inputs import load_input

    assert load_input(str(image_folder), image_size=8).summary == "60 images"
    assert as_source(str(image_folder), image_size=8).skipped == {}


@needs_symlinks
def test_symlinked_folders_are_followed_once(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    _png(root / "real" / "a.png")
    _png(outside / "b.png")
    os.symlink(outside, root / "linked", target_is_directory=True)
    os.symlink(root, root / "real" / "loop", target_is_directory=True)  # to an ancestor
    os.symlink(root / "real", root / "again", target_is_directory=True)  # seen already
    os.symlink(tmp_path / "gone.png", root / "dangling.png")
    expected = [os.path.join("linked", "b.png"), os.path.join("real", "a.png")]
    assert [os.path.relpath(p, root) for p in list_image_files(root)] == expected

    from deepclust.data import scan_image_folder

    paths, skipped = scan_image_folder(root)
    assert [os.path.relpath(p, root) for p in paths] == expected
    assert skipped == {"repeated folder": 2, "broken link": 1}
    source = as_source(str(root), image_size=8)
    assert len(source) == 2


def test_command_decodes_a_folder_at_the_size_the_recipe_trains_keeping_the_aspect(tmp_path):
    from deepclust.cli._inputs import auto_image_size
    from deepclust.recipes import LARGEST_TRAINING_SIDE

    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((96, 48, 3), 40 * i, np.uint8)).save(path)
        paths.append(str(path))
    side = LARGEST_TRAINING_SIDE["cpu"]
    assert auto_image_size(paths, torch.device("cpu")) == (side, side // 2)
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(small)
    assert auto_image_size([str(small)], torch.device("cpu")) == (12, 10)


def test_files_keep_their_aspect_and_are_centre_cropped(tmp_path):
    """A wide image (red | green | blue thirds) read as a square is its green centre, not
    the three bands squashed together."""
    pixels = np.zeros((30, 90, 3), np.uint8)
    pixels[:, :30, 0] = pixels[:, 30:60, 1] = pixels[:, 60:, 2] = 255
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    Image.fromarray(pixels.transpose(1, 0, 2)).save(tmp_path / "tall.png")
    source = as_source(str(tmp_path), image_size=(12, 12))
    images = source.load(np.arange(2))
    assert images.shape == (2, 3, 12, 12)
    green = images[:, 1].mean(dim=(1, 2))
    red_or_blue = images[:, [0, 2]].mean(dim=(1, 2, 3))
    assert torch.all(green > 0.95) and torch.all(red_or_blue < 0.05)

"""Bad photos and bad tensors: every picture loads by its documented rule or is refused by name.

The rules are those of ``detr_explained.preprocessing.load_image`` (book/01_backbone.ipynb).
Hand-written cases first, one per reported bug; then property-based tests (hypothesis) that draw
arrays, PIL images and tensors broadly and accept only "the right answer or a clear error".
"""
import contextlib
import re
import warnings

import matplotlib.cbook
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import detr_explained as de
from detr_explained import synthetic
from detr_explained.coco_panoptic import open_dataset
from detr_explained.preprocessing import (IMAGENET_MEAN, IMAGENET_STD, MIN_IMAGE_SIDE, ImageBatch,
                                          UnnormalisedImageWarning, _lab_to_rgb, check_image,
                                          resized_size)

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)
PHOTO = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


def pixels(image):
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    return np.asarray(image).astype(int)  # (H, W, 3)


@contextlib.contextmanager
def no_warnings():
    """A context in which any warning is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --------------------------------------------------------------------------------------------
# 16-bit and 32-bit grey, floats
# --------------------------------------------------------------------------------------------

def test_16_bit_png_keeps_its_grey_levels(tmp_path):
    levels = np.array([[0, 257 * 100, 32768, 65535]], dtype=np.uint16)  # (1, 4)
    path = tmp_path / "deep.png"
    Image.fromarray(levels).save(path)
    assert Image.open(path).mode.startswith("I")          # PIL opens it as 16-bit (I;16 or I)
    loaded = pixels(de.load_image(path))
    assert loaded[0, :, 0].tolist() == [0, 100, 128, 255]  # not clipped to white
    assert (loaded == loaded[:, :, :1]).all()              # grey: three equal channels


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I;16N"])
def test_every_16_bit_byte_order_scales_by_65535(mode):
    assert pixels(de.load_image(Image.new(mode, (3, 2), 32768)))[0, 0].tolist() == [128] * 3


def test_uint16_array_and_16_bit_file_agree(tmp_path):
    array = np.random.default_rng(0).integers(0, 65536, (20, 30), dtype=np.uint16)
    Image.fromarray(array).save(tmp_path / "deep.png")
    from_file, from_array = pixels(de.load_image(tmp_path / "deep.png")), pixels(de.load_image(array))
    assert np.array_equal(from_file, from_array)
    assert np.abs(from_array[:, :, 0] - array / 257).max() <= 0.5


def test_mode_i_rules():
    assert pixels(de.load_image(Image.new("I", (3, 2), 32768)))[0, 0, 0] == 128  # 16-bit values
    with pytest.warns(UserWarning, match="read as 8-bit"):
        eight = de.load_image(Image.new("I", (3, 2), 200))                     # 8-bit values
    assert pixels(eight)[0, 0, 0] == 200
    from_png = Image.new("I", (3, 2), 200)
    from_png.format = "PNG"  # old Pillow opens 16-bit PNGs as mode I: a PNG is always 16-bit here
    with no_warnings():
        assert pixels(de.load_image(from_png))[0, 0, 0] == 1                   # round(200 / 257)
    with no_warnings():
        assert pixels(de.load_image(Image.new("I", (3, 2), 0)))[0, 0, 0] == 0  # black: no doubt
    for value in (-5, 70000):
        with pytest.raises(ValueError, match=rf"mode I.*\[{value}, {value}\]"):
            de.load_image(Image.new("I", (3, 2), value))


def test_float_tiff_in_0_1_loads(tmp_path):
    values = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    path = tmp_path / "float.tif"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "F"
    assert pixels(de.load_image(path))[0, :, 1].tolist() == [0, 64, 128, 255]  # round(255 v)


@pytest.mark.parametrize("values,shown", [([0.0, 200.0], "[0, 200]"), ([-0.5, 0.5], "[-0.5, 0.5]")])
def test_float_tiff_outside_0_1_is_refused_with_its_range(tmp_path, values, shown):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([values], dtype=np.float32)).save(path)
    with pytest.raises(ValueError, match=re.escape(shown)) as error:
        de.load_image(path)
    assert "mode F" in str(error.value) and "divide 0..255 data by 255" in str(error.value)


def test_float_with_nan_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        de.load_image(Image.new("F", (3, 2), float("nan")))


# --------------------------------------------------------------------------------------------
# EXIF orientation
# --------------------------------------------------------------------------------------------

def exif_jpeg(path, orientation):
    """A 40 wide x 20 high JPEG, blue with a red top-left corner, tagged with an EXIF orientation."""
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 8, 8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), quality=95)
    return path


# orientation -> (width, height) as shown, and where the stored top-left corner is shown
SHOWN = {1: ((40, 20), "top left"), 3: ((40, 20), "bottom right"),
         6: ((20, 40), "top right"), 8: ((20, 40), "bottom left")}


@pytest.mark.parametrize("orientation", sorted(SHOWN))
@pytest.mark.parametrize("kind", ["path", "file", "PIL"])
def test_exif_orientation_is_applied(tmp_path, orientation, kind):
    path = exif_jpeg(tmp_path / "phone.jpg", orientation)
    if kind == "path":
        image = de.load_image(path)
    elif kind == "file":
        with open(path, "rb") as file:
            image = de.load_image(file)
    else:
        image = de.load_image(Image.open(path))
    size, corner = SHOWN[orientation]
    assert image.size == size
    width, height = size
    y = 3 if corner.startswith("top") else height - 4
    x = 3 if corner.endswith("left") else width - 4
    red = pixels(image)[y, x]
    assert red[0] > 200 and red[2] < 60, (corner, red)
    opposite = pixels(image)[height - 1 - y, width - 1 - x]
    assert opposite[2] > 200 and opposite[0] < 60


# --------------------------------------------------------------------------------------------
# Other modes: transparency, colour spaces
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image,expected", [
    (Image.new("PA", (3, 2), (0, 0)), [255, 255, 255]),                     # was black: alpha dropped
    (Image.new("La", (3, 2), (50, 128)), [50 + 127] * 3),                   # premultiplied: c + 255 - a
    (Image.new("RGBa", (3, 2), (100, 15, 15, 128)), [227, 142, 142]),       # was (199, 29, 29)
    (Image.new("LA", (3, 2), (128, 0)), [255, 255, 255]),
    (Image.new("RGBA", (3, 2), (200, 30, 30, 255)), [200, 30, 30]),
])
def test_transparency_is_composited_onto_white(image, expected):
    assert np.abs(pixels(de.load_image(image))[0, 0] - expected).max() <= 1


def test_colour_key_transparency_of_16_bit_grey():
    image = Image.fromarray(np.array([[1000, 5000]], dtype=np.uint16))
    image.info["transparency"] = 1000
    assert pixels(de.load_image(image))[0, :, 0].tolist() == [255, round(5000 / 257)]


def random_bytes(mode, seed=1, size=(8, 6)):
    count = size[0] * size[1] * len(Image.getmodebands(mode) * "x")
    data = np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8).tobytes()
    return Image.frombytes(mode, size, data)


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr", "LAB", "HSV", "RGBX", "P", "1", "L"])
def test_colour_spaces_go_through_pils_conversion(mode):
    image = random_bytes("RGB").convert(mode) if mode in ("P", "1", "L") else random_bytes(mode)
    assert np.array_equal(pixels(de.load_image(image)), np.asarray(image.convert("RGB")))


def test_lab_fallback_agrees_with_pil():
    lab = random_bytes("LAB", seed=2)
    ours = np.asarray(_lab_to_rgb(lab)).astype(int)
    assert np.abs(ours - np.asarray(lab.convert("RGB")).astype(int)).max() <= 2


# --------------------------------------------------------------------------------------------
# numpy arrays, tensors and other sources
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source,error,words", [
    (np.zeros((0, 5, 3), np.uint8), ValueError, "empty"),
    (np.zeros((4, 0), np.float32), ValueError, "empty"),
    (Image.new("RGB", (0, 5)), ValueError, "empty"),
    (np.zeros((3, 40, 50), np.uint8), ValueError, r"channels-first.*transpose\(1, 2, 0\)"),
    (np.zeros((1, 40, 50, 3), np.uint8), ValueError, r"array\[0\]"),
    (np.zeros((4, 4, 2), np.uint8), ValueError, "grey and alpha"),
    (np.full((4, 4), 128, np.int64), TypeError, r"int64.*\[128, 128\].*astype\(np.uint8\)"),
    (np.zeros((4, 4), np.complex64), TypeError, "bool, uint8, uint16 or float"),
    (torch.rand(3, 40, 40), TypeError, r"permute\(1, 2, 0\)"),
    (b"\x89PNG", TypeError, "BytesIO"),
])
def test_bad_sources_are_refused_by_name(source, error, words):
    with pytest.raises(error, match=words):
        de.load_image(source)


def test_empty_array_never_reaches_a_division():
    with pytest.raises(ValueError, match="empty"):
        de.prepare_image(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ValueError, match="width must be a positive int"):
        resized_size(0, 10)


def test_text_mode_file_is_refused(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    with open(tmp_path / "a.png") as text, pytest.raises(TypeError, match="'rb'"):
        de.load_image(text)


def test_bool_array_is_black_and_white():
    mask = np.array([[True, False]])
    assert pixels(de.load_image(mask))[0, :, 0].tolist() == [255, 0]


# --------------------------------------------------------------------------------------------
# Sizes and options
# --------------------------------------------------------------------------------------------

def test_a_cap_below_the_shorter_side_is_the_official_rule():
    """max_longer below shorter is allowed, as in the official resize: the cap wins."""
    assert resized_size(640, 480, max_longer=500) == (375, 500)


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(shorter=0), ValueError, "shorter must be a positive int, got 0"),
    (dict(shorter=-3), ValueError, "shorter must be a positive int"),
    (dict(shorter=800.0), TypeError, "shorter=800"),
    (dict(shorter="800"), TypeError, "shorter must be a positive int"),
    (dict(shorter=True), TypeError, "bool"),
    (dict(max_longer=0), ValueError, "max_longer must be a positive int"),
    (dict(max_longer=1333.5), TypeError, "max_longer"),
])
def test_bad_resize_options(kwargs, error, words):
    with pytest.raises(error, match=words):
        resized_size(640, 480, **kwargs)
    with pytest.raises(error, match=words):
        de.prepare_image(Image.new("RGB", (64, 48)), **kwargs)


def test_resize_options_that_are_fine():
    assert resized_size(640, 480, shorter=np.int64(400), max_longer=None) == (400, 533)
    assert resized_size(640, 480, shorter=800, max_longer=800) == (600, 800)
    assert resized_size(1, 1) == (800, 800)


def test_too_elongated_images_get_a_clear_error():
    with pytest.raises(ValueError, match="too elongated.*shorter side would become 0"):
        resized_size(10000, 1)
    with pytest.raises(ValueError, match=f"below the {MIN_IMAGE_SIDE} the backbone needs"):
        de.prepare_image(Image.new("RGB", (1000, 10)))
    assert de.prepare_image(Image.new("RGB", (1000, 10)), shorter=32, max_longer=None).shape == (3, 32, 3200)


# --------------------------------------------------------------------------------------------
# Tensors that reach the model
# --------------------------------------------------------------------------------------------

def raw_pixels():
    return TF.to_tensor(de.load_image(PHOTO).resize((64, 75)))  # (3, 75, 64) in [0, 1]


@pytest.mark.parametrize("make,words", [
    (lambda: raw_pixels() * 255, "0..255 pixel values"),
    (lambda: raw_pixels(), r"\[0, 1\] pixels that were not normalised"),
    (lambda: (raw_pixels() * 255 - MEAN) / STD, "far outside"),
    (lambda: torch.full((3, 40, 40), 128.0), "0..255 pixel values"),
])
def test_unnormalised_tensor_warns(make, words):
    with pytest.warns(UnnormalisedImageWarning, match=words) as record:
        check_image(make())
    assert "prepare_image" in str(record[0].message) and "normalize(image" in str(record[0].message)


def test_the_warning_points_at_the_callers_line(tiny):
    with pytest.warns(UnnormalisedImageWarning) as record:
        tiny([raw_pixels()])  # through DETRPanoptic.forward and ImageBatch.from_images
    ours = [w for w in record if w.category is UnnormalisedImageWarning]
    assert ours[0].filename == __file__


def normalised_inputs(tmp_path):
    photo = de.load_image(PHOTO)
    yield "photo", de.prepare_image(photo)
    yield "photo at 320", de.prepare_image(photo, shorter=320)
    yield "crop", de.prepare_image(photo.crop((0, 60, 512, 380)), shorter=256)
    for name, colour in [("black", 0), ("white", 255), ("mid grey", 128)]:
        yield name, de.prepare_image(Image.new("RGB", (40, 40), (colour,) * 3), shorter=40)
    # one colour whose normalised channels are about 0, 0.7 and 1: all in [0, 1], yet no pixels
    yield "blue-grey", de.prepare_image(Image.new("RGB", (40, 40), (124, 145, 160)), shorter=40)
    yield "randn", torch.randn(3, 50, 60, generator=torch.Generator().manual_seed(0))
    yield "zeros", torch.zeros(3, 40, 40)
    yield "scene", synthetic.held_out_scene(synthetic.BOOK_SCENE).tensor()
    synthetic.write_dataset(str(tmp_path), num_images=2, seed=0, min_side=64, max_side=96)
    dataset = open_dataset(tmp_path)
    for index in range(len(dataset)):
        yield f"CocoPanoptic[{index}]", dataset[index][0]


def test_normalised_inputs_do_not_warn(tmp_path):
    names = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, image in normalised_inputs(tmp_path):
            check_image(image)
            names.append(name)
        ImageBatch.from_images([de.prepare_image(PHOTO, shorter=64)])
    assert len(names) >= 10


@pytest.mark.parametrize("image,error,words", [
    (torch.zeros(40, 40, 3), ValueError, r"permute\(2, 0, 1\)"),
    (torch.zeros(1, 40, 40), ValueError, "grey"),
    (torch.zeros(3, 0, 0), ValueError, "at least 32"),
    (torch.full((3, 40, 40), float("-inf")), ValueError, "NaN or infinite"),
])
def test_check_image_hints(image, error, words):
    with pytest.raises(error, match=words):
        check_image(image)


def test_from_images_takes_any_iterable_of_tensors_and_refuses_arrays():
    batch = ImageBatch.from_images(torch.zeros(3, 40, 40) for _ in range(2))
    assert batch.tensors.shape == (2, 3, 40, 40)
    with pytest.raises(TypeError, match="prepare_image"):
        ImageBatch.from_images(np.zeros((40, 40, 3), np.float32))
    with pytest.raises(TypeError, match="torch.dtype"):
        ImageBatch.from_images([torch.zeros(3, 40, 40)], dtype="float32")


def test_denormalize_checks_its_input():
    assert de.denormalize(torch.zeros(1, 4, 5)).shape == (4, 5, 3)  # grey, as figures uses it
    with pytest.raises(ValueError, match=r"batch\[i\]"):
        de.denormalize(torch.zeros(2, 3, 4, 4))
    with pytest.raises(TypeError, match="torch.as_tensor"):
        de.denormalize(np.zeros((3, 4, 4)))


# --------------------------------------------------------------------------------------------
# Property-based: arrays -> load_image
# --------------------------------------------------------------------------------------------

DTYPES = [np.bool_, np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.uint32,
          np.float16, np.float32, np.float64, np.complex64]


@st.composite
def image_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(st.one_of(
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
        st.tuples(st.integers(0, 5), st.integers(0, 5), st.sampled_from([1, 2, 3, 4])),
    ))
    if dtype.kind == "f" and draw(st.booleans()):  # half the floats are pixels in [0, 1]
        elements = st.floats(0, 1, width=8 * dtype.itemsize)
        return draw(hnp.arrays(dtype, shape, elements=elements))
    return draw(hnp.arrays(dtype, shape))


def documented_pixels(array):
    """What load_image's rules say an array becomes: (H, W, 3) floats, or (error, words)."""
    shape = array.shape
    if array.ndim not in (2, 3) or (array.ndim == 3 and shape[2] not in (1, 3, 4)):
        return ValueError, "HxW, HxWx1, HxWx3 or HxWx4"
    if array.size == 0:
        return ValueError, "empty"
    kind = array.dtype.kind
    if kind == "b":
        values = array * 255.0
    elif array.dtype == np.uint8:
        values = array.astype(float)
    elif array.dtype == np.uint16:
        values = array * (255 / 65535)
    elif kind in "ui":
        return TypeError, "astype(np.uint8)"
    elif kind == "f":
        if not np.isfinite(array).all():
            return ValueError, "NaN or infinite"
        if array.min() < 0 or array.max() > 1:
            return ValueError, "[0, 1]"
        values = array.astype(float) * 255
    else:
        return TypeError, "dtype"
    if values.ndim == 2:
        values = values[:, :, None]                                        # (H, W, 1)
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)                              # (H, W, 3)
    if values.shape[2] == 4:
        alpha = np.round(values[:, :, 3:]) / 255                           # (H, W, 1)
        values = np.round(values[:, :, :3]) * alpha + 255 * (1 - alpha)    # onto white
    return values


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image_arrays())
def test_arrays_load_by_the_rule_or_are_refused_by_name(array):
    expected = documented_pixels(array)
    if isinstance(expected, tuple):
        error, words = expected
        with pytest.raises(error) as raised:
            de.load_image(array)
        assert words in str(raised.value)
        return
    image = de.load_image(array)
    assert image.mode == "RGB" and image.size == (array.shape[1], array.shape[0])
    assert np.abs(pixels(image) - expected).max() <= 1.01


# --------------------------------------------------------------------------------------------
# Property-based: PIL's deep modes -> load_image
# --------------------------------------------------------------------------------------------

@st.composite
def deep_images(draw):
    mode = draw(st.sampled_from(["I;16", "I", "F"]))
    height, width = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if mode == "I;16":
        values = draw(hnp.arrays(np.uint16, (height, width)))
    elif mode == "I":
        top = draw(st.sampled_from([255, 65535, 2 ** 31 - 1]))
        values = draw(hnp.arrays(np.int32, (height, width), elements=st.integers(-5, top)))
    else:
        values = draw(hnp.arrays(np.float32, (height, width),
                                 elements=st.floats(-0.5, 1.5, width=32) | st.floats(0, 1, width=32)))
    image = Image.fromarray(values)
    assert image.mode == mode
    return image, values


@settings(max_examples=80, deadline=None)
@given(deep_images())
def test_deep_modes_load_by_the_rule_or_are_refused_by_name(drawn):
    image, values = drawn
    low, high = values.min(), values.max()
    if image.mode == "F" and (low < 0 or high > 1):
        with pytest.raises(ValueError, match="mode F.*values in"):
            de.load_image(image)
        return
    if image.mode == "I" and (low < 0 or high > 65535):
        with pytest.raises(ValueError, match="mode I.*values in"):
            de.load_image(image)
        return
    if image.mode == "F":
        expected = values * 255.0
    elif image.mode == "I;16" or high > 255:
        expected = values * (255 / 65535)
    else:
        expected = values.astype(float)  # mode I within 0..255: 8-bit, with a warning if not black
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = pixels(de.load_image(image))
    eight_bit_mode_i = image.mode == "I" and 0 < high <= 255
    assert [("read as 8-bit" in str(w.message)) for w in caught] == ([True] if eight_bit_mode_i else [])
    assert np.abs(loaded - expected[:, :, None]).max() <= 0.51


# --------------------------------------------------------------------------------------------
# Property-based: tensors -> check_image
# --------------------------------------------------------------------------------------------

@st.composite
def tensors(draw):
    dims = draw(st.integers(0, 4))
    shape = tuple(draw(st.sampled_from([0, 1, 3, 31, 32, 40])) for _ in range(dims))
    if dims == 3 and draw(st.booleans()):
        shape = (3,) + shape[1:]
    dtype = draw(st.sampled_from([torch.float32, torch.float32, torch.float64, torch.float16,
                                  torch.uint8, torch.int64, torch.bool]))
    recipe = draw(st.sampled_from(["randn", "pixels", "0..255", "constant", "nan", "inf", "huge"]))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 16)))
    pixels01 = torch.rand(shape, generator=generator)
    values = {"randn": torch.randn(shape, generator=generator), "pixels": pixels01,
              "0..255": pixels01 * 255, "constant": torch.full(shape, draw(st.floats(-3, 300))),
              "nan": pixels01.masked_fill(pixels01 > 0.5, float("nan")),
              "inf": pixels01.masked_fill(pixels01 > 0.5, float("inf")),
              "huge": pixels01 * 1e30}[recipe]
    return values.to(dtype)


@settings(max_examples=150, deadline=None)
@given(tensors())
def test_check_image_passes_or_says_what_is_wrong(image):
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_image(image)
    except (ValueError, TypeError) as error:
        assert re.search(r"image 0 (is|has|must)", str(error)), str(error)
        return
    # it passed: it is what the model can encode
    assert image.dim() == 3 and image.shape[0] == 3 and image.dtype == torch.float32
    assert min(image.shape[1:]) >= MIN_IMAGE_SIDE and torch.isfinite(image).all()
    for warning in caught:
        assert warning.category is UnnormalisedImageWarning
    if image.min() == image.max() and -2.2 < float(image.min()) < 2.7:
        assert not caught  # one colour within the normalised range: never flagged


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), min_size=3, max_size=3),
       st.integers(0, 2 ** 16))
def test_normalised_pixels_warn_only_when_indistinguishable(bands, seed):
    """Photos whose channels each span a drawn band of pixel values, normalised as prepare_image does."""
    rng = np.random.default_rng(seed)
    array = np.stack([rng.integers(min(band), max(band) + 1, (32, 40)) for band in bands])  # (3, H, W)
    image = (torch.from_numpy(array).float() / 255 - MEAN) / STD  # (3, H, W) normalised
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_image(image)
    if caught:  # only an image with every value in [0, 1] can pass for unnormalised pixels
        assert image.min() >= 0 and image.max() <= 1


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.integers(-3, 3000), st.floats(-1, 3000), st.booleans(), st.none()),
       st.one_of(st.integers(-3, 3000), st.just(1)),
       st.one_of(st.integers(-3, 1500), st.floats(1, 900)),
       st.one_of(st.none(), st.integers(-3, 5000)))
def test_resized_size_returns_positive_sides_or_says_what_is_wrong(width, height, shorter, max_longer):
    try:
        new_height, new_width = resized_size(width, height, shorter, max_longer)
    except (ValueError, TypeError) as error:
        assert re.search(r"width|height|shorter|max_longer|elongated", str(error))
        return
    assert new_height >= 1 and new_width >= 1
    assert isinstance(new_height, (int, np.integer)) and isinstance(new_width, (int, np.integer))

"""Scene layouts: make_scene split into drawing an editable layout and rendering it, bit for bit the
scenes the shipped model was trained on; and the edits a scene editor makes to a layout."""
import hashlib

import numpy as np
import pytest

from detr_explained import synthetic
from detr_explained.synthetic import CIRCLE, RECTANGLE, TRIANGLE, SKY, GROUND, WATER

# sha256 of image bytes + ids bytes, computed with make_scene as it was before layouts existed:
# a change in how scenes are drawn (and so in the shipped model's training data) shows up here.
PINNED = {
    (0, 0, None): "d42067782f68ee7f9a556d84e827f0c6e8bfe92edf18b254cb16044262dff943",
    (1, 7, None): "6658a1c7263b00e5a1b46c8d4e363b53fd8f1bd6c80640ee229d86a04c966fc2",
    (0, 5, (100, 140)): "5d6c4e1ac2146c4a8d74471e5cbb68052f5b2b8fc0759ded5f75fe66077ca90e",
    (1, 3, (32, 32)): "f00cd5f42e74d1932984a86fcde5f8a1afed395d03d699efcc7f6657d3d55ff0",
    (2, 11, (200, 64)): "511998cd536852ce644e80c7236f9e5d81b7a3ceebf081e3c308a756c21636ee",
}
HELD_OUT_BOOK_SCENE = "00db18b86232fe056f7c52fbc20e2e9ea1c45b1a2237fffaabd1b69ae2357d75"
# Scenes with something the scene does not show: shape 3 of (0, 4) is hidden behind others, and
# shapes cover all the ground of (0, 69).
WITH_HIDDEN_SHAPE = (0, 4)
WITH_COVERED_STUFF = (0, 69)


def checksum(scene):
    return hashlib.sha256(scene.image.tobytes() + scene.ids.tobytes()).hexdigest()


def assert_same_scene(a, b):
    assert a.image.dtype == b.image.dtype == np.uint8 and np.array_equal(a.image, b.image)
    assert a.ids.dtype == b.ids.dtype == np.int64 and np.array_equal(a.ids, b.ids)
    assert a.segments == b.segments


def pixels(image):
    """What render makes of float colours: uint8."""
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def book():
    return synthetic.held_out_layout(synthetic.BOOK_SCENE)


@pytest.fixture(scope="module")
def blank(book):
    """The book scene's stuff without any shape."""
    layout = book
    while layout.shapes:
        layout = layout.removed(0)
    return layout


@pytest.mark.parametrize("case", sorted(PINNED, key=str))
def test_scenes_are_those_drawn_before_layouts(case):
    seed, index, size = case
    scene = synthetic.make_scene(seed, index, size=size)
    assert checksum(scene) == PINNED[case]
    assert_same_scene(synthetic.scene_layout(seed, index, size=size).render(), scene)


def test_held_out_layout_renders_the_held_out_scene():
    scene = synthetic.held_out_scene(synthetic.BOOK_SCENE)
    assert checksum(scene) == HELD_OUT_BOOK_SCENE
    assert_same_scene(synthetic.held_out_layout(synthetic.BOOK_SCENE).render(), scene)
    assert_same_scene(synthetic.held_out_layout(0).render(), synthetic.held_out_scene(0))


SIZES = ((100, 140), (32, 32), (200, 64))


@pytest.mark.parametrize("seed, index, kwargs", [(s, i, {}) for s in (0, 1) for i in range(10)]
                         + [(0, i, {"size": size}) for i in range(3) for size in SIZES]
                         + [(3, 1, {"min_side": 40, "max_side": 60}), (0, 69, {}), (0, 4, {}),
                            (5, 2, {"size": (1, 1)})])
def test_layout_renders_make_scene(seed, index, kwargs):
    layout = synthetic.scene_layout(seed, index, **kwargs)
    assert_same_scene(layout.render(), synthetic.make_scene(seed, index, **kwargs))
    again = synthetic.scene_layout(seed, index, **kwargs)
    assert again.shapes == layout.shapes and again.stuff_ids == layout.stuff_ids
    assert all(np.array_equal(a.noise, b.noise) for a, b in zip(again.shapes, layout.shapes))
    assert np.array_equal(again.stuff_image, layout.stuff_image)


def test_layout_fields(book):
    scene = book.render()
    assert (book.height, book.width) == scene.ids.shape == book.stuff.shape
    assert book.stuff.dtype == np.int64 and book.stuff_image.shape == (book.height, book.width, 3)
    assert set(book.stuff_ids) == set(np.unique(book.stuff).tolist())
    assert [s.segment_id for s in book.shapes] == [s["id"] for s in scene.segments if "drawn_area" in s]
    for shape, segment in zip(book.shapes, (s for s in scene.segments if "drawn_area" in s)):
        assert shape.category == segment["category_id"]
        assert shape.mask(book.height, book.width).sum() == segment["drawn_area"]
    stuff_shown = scene.ids[:, :, None] == np.array(list(book.stuff_ids.values()))
    assert np.array_equal(scene.image[stuff_shown.any(-1)], pixels(book.stuff_image)[stuff_shown.any(-1)])


def test_shapes_are_pure():
    shape = synthetic.Shape(TRIANGLE, 20.5, 30, 8, segment_id=77)
    assert np.array_equal(shape.mask(50, 60), shape.mask(50, 60)) and shape.mask(50, 60).dtype == bool
    assert np.array_equal(shape.texture(50, 60), shape.texture(50, 60))
    assert shape.texture(50, 60).shape == (50, 60, 3)
    assert len(shape.angles) == 3, "a triangle without angles gets an upright one"
    assert shape.mask(50, 60)[12:20, 30].all() and not shape.mask(50, 60)[30, 30]


def test_hidden_shapes_of_the_scene_are_in_the_layout():
    layout = synthetic.scene_layout(*WITH_HIDDEN_SHAPE)
    scene = layout.render()
    assert layout.hidden() == [3]
    hidden = layout.shapes[3]
    assert hidden.segment_id not in scene.ids and hidden.segment_id not in [s["id"] for s in scene.segments]
    ids = [s.segment_id for s in layout.shapes] + list(layout.stuff_ids.values())
    assert len(set(ids)) == len(ids)
    uncovered = layout
    for _ in range(len(layout.shapes) - 4):
        uncovered = uncovered.removed(4)  # everything in front of it
    assert uncovered.hidden() == []
    shown = uncovered.render()
    assert np.array_equal(shown.ids == hidden.segment_id, hidden.mask(layout.height, layout.width))


def test_stuff_covered_in_the_scene_shows_when_uncovered():
    layout = synthetic.scene_layout(*WITH_COVERED_STUFF)
    assert GROUND not in [s["category_id"] for s in layout.render().segments]
    assert GROUND in layout.stuff_ids
    bare = layout
    while bare.shapes:
        bare = bare.removed(len(bare.shapes) - 1)
    scene = bare.render()
    ground = layout.stuff == GROUND
    assert {"id": layout.stuff_ids[GROUND], "category_id": GROUND} in scene.segments
    assert (scene.ids[ground] == layout.stuff_ids[GROUND]).all()
    assert np.array_equal(scene.image[ground], pixels(layout.stuff_image)[ground])
    assert scene.image[ground].astype(float).mean(-1).std() > 4, "textured ground, not a fallback colour"


def test_a_stuff_class_without_id_gets_a_fresh_one(blank):
    stuff_ids = {c: i for c, i in blank.stuff_ids.items() if c != WATER}
    layout = synthetic.SceneLayout(blank.stuff, blank.stuff_image, stuff_ids, [])
    scene = layout.render()
    water = [s["id"] for s in scene.segments if s["category_id"] == WATER]
    assert len(water) == 1 and water[0] not in stuff_ids.values()
    assert (scene.ids[blank.stuff == WATER] == water[0]).all()
    assert layout.render().segments == scene.segments, "deterministic"


def test_removed_gives_the_pixels_back(book):
    scene = book.render()
    assert book.hidden() == []
    k = 1
    gone = book.shapes[k].segment_id
    after = book.removed(k)
    assert len(after.shapes) == len(book.shapes) - 1 and after.shapes == book.shapes[:k] + book.shapes[k + 1:]
    new = after.render()
    assert gone not in new.ids and gone not in [s["id"] for s in new.segments]
    region = scene.ids == gone
    assert np.array_equal(new.ids[~region], scene.ids[~region])
    assert np.array_equal(new.image[~region], scene.image[~region])
    stuff_id = np.vectorize(book.stuff_ids.get)(book.stuff)
    to_stuff = region & (new.ids == stuff_id)
    assert to_stuff.sum() > 100, "most of the circle was in front of stuff"
    assert np.array_equal(new.image[to_stuff], pixels(book.stuff_image)[to_stuff])
    behind = region & ~to_stuff  # what it hid of the shape behind it
    assert set(np.unique(new.ids[behind]).tolist()) <= {s.segment_id for s in book.shapes[:k]}


def test_removing_everything_leaves_the_stuff(blank, book):
    scene = blank.render()
    assert blank.shapes == [] and blank.hidden() == []
    assert [s["category_id"] for s in scene.segments] == [SKY, GROUND, WATER]
    assert np.array_equal(scene.ids, np.vectorize(book.stuff_ids.get)(book.stuff))
    assert np.array_equal(scene.image, pixels(book.stuff_image))


def test_added_is_on_top_with_a_fresh_id(book):
    layout = book.added(CIRCLE, 95, 60, 14)
    shape = layout.shapes[-1]
    assert layout.shapes[:-1] == book.shapes
    assert (shape.category, shape.cy, shape.cx, shape.size) == (CIRCLE, 95.0, 60.0, 14.0)
    others = [s.segment_id for s in book.shapes] + list(book.stuff_ids.values())
    assert shape.segment_id not in others and 1 <= shape.segment_id <= 256**3 - 1
    scene = layout.render()
    assert scene.segments[-1] == {"id": shape.segment_id, "category_id": CIRCLE,
                                  "drawn_area": int(shape.mask(book.height, book.width).sum())}
    assert np.array_equal(scene.ids == shape.segment_id, shape.mask(book.height, book.width)), "on top"
    assert book.added(CIRCLE, 95, 60, 14).shapes[-1] == shape, "the same edit, the same shape"
    two = layout.added(RECTANGLE, 30, 30, 10, color=(0.1, 0.9, 0.1))
    assert two.shapes[-1].segment_id != shape.segment_id and two.shapes[-1].color == (0.1, 0.9, 0.1)
    three = two.added(TRIANGLE, 40, 90, 12)
    assert [s["category_id"] for s in three.render().segments][-3:] == [CIRCLE, RECTANGLE, TRIANGLE]
    assert len({s["id"] for s in three.render().segments}) == len(three.render().segments)


def test_moved_moves_the_shape_and_its_texture(blank):
    layout = blank.added(RECTANGLE, 40, 40, 10).added(TRIANGLE, 30, 100, 9)
    before = layout.render()
    moved = layout.moved(0, 80, 90)
    after = moved.render()
    segment_id = layout.shapes[0].segment_id
    old, new = before.ids == segment_id, after.ids == segment_id
    assert old.sum() == new.sum() > 300, "unoccluded, the area is kept"
    assert np.array_equal(np.roll(old, (40, 50), axis=(0, 1)), new)
    assert np.array_equal(after.image[new], before.image[old]), "the texture, noise included, moves along"
    assert layout.shapes[0].noise is None, "an added shape's noise is drawn from its id"
    drawn = np.random.default_rng(segment_id).normal(0, 0.03, (128, 128))
    assert np.array_equal(moved.shapes[0].noise, np.roll(drawn, (40, 50), axis=(0, 1)))
    stuff_id = np.vectorize(blank.stuff_ids.get)(blank.stuff)
    uncovered = old & ~new
    assert np.array_equal(after.ids[uncovered], stuff_id[uncovered])
    assert np.array_equal(after.image[uncovered], pixels(blank.stuff_image)[uncovered])
    triangle = layout.shapes[1].segment_id
    assert np.array_equal(after.ids == triangle, before.ids == triangle), "the other shape stays"
    assert moved.shapes[1] == layout.shapes[1] and (moved.shapes[0].cy, moved.shapes[0].cx) == (80.0, 90.0)


def test_moved_drawn_shape_shows_where_expected(book):
    k = 2  # a circle with shapes in front of it, moved by whole pixels, and inside the image
    moved = book.moved(k, book.shapes[k].cy - 50, book.shapes[k].cx + 30)
    scene = moved.render()
    height, width = book.height, book.width
    in_front = np.zeros((height, width), dtype=bool)
    for shape in moved.shapes[k + 1:]:
        in_front |= shape.mask(height, width)
    expected = moved.shapes[k].mask(height, width) & ~in_front
    assert expected.sum() >= synthetic.MIN_VISIBLE_PIXELS
    assert np.array_equal(scene.ids == book.shapes[k].segment_id, expected)
    assert moved.shapes[k].mask(height, width).sum() == book.shapes[k].mask(height, width).sum()
    off_grid = book.moved(k, 40.25, 90.7)  # a sub-pixel move may change the pixel count a little
    assert np.array_equal(off_grid.render().ids == book.shapes[k].segment_id,
                          off_grid.shapes[k].mask(height, width) & ~in_front)


def test_resized_changes_the_area(blank):
    layout = blank.added(CIRCLE, 64, 64, 10)
    bigger = layout.resized(0, 20)
    segment_id = layout.shapes[0].segment_id
    small, big = ((l.render().ids == segment_id).sum() for l in (layout, bigger))
    assert big == bigger.shapes[0].mask(128, 128).sum() and 3.5 * small < big < 4.5 * small
    assert (bigger.shapes[0].cy, bigger.shapes[0].cx, bigger.shapes[0].size) == (64.0, 64.0, 20.0)
    assert bigger.shapes[0].segment_id == segment_id


def test_a_shape_moved_under_another_is_hidden(blank):
    layout = blank.added(CIRCLE, 20, 20, 6).added(RECTANGLE, 90, 90, 25)
    circle = layout.shapes[0].segment_id
    assert layout.hidden() == [] and circle in layout.render().ids
    under = layout.moved(0, 90, 90)
    assert under.hidden() == [0]
    scene = under.render()
    assert circle not in scene.ids and circle not in [s["id"] for s in scene.segments]
    assert [s["category_id"] for s in scene.segments] == [SKY, GROUND, WATER, RECTANGLE]
    # Nearly under: a sliver of fewer than MIN_VISIBLE_PIXELS pixels is no object either.
    rectangle = layout.shapes[1].mask(128, 128)
    edge = np.nonzero(rectangle.any(0))[0].max()
    sliver = layout.moved(0, 90, edge - 3)  # 3 of its 13 columns stick out
    visible = (sliver.shapes[0].mask(128, 128) & ~rectangle).sum()
    assert 0 < visible < synthetic.MIN_VISIBLE_PIXELS and sliver.hidden() == [0]
    back = under.moved(0, 20, 20)
    assert back.hidden() == [] and np.array_equal(back.render().ids, layout.render().ids)
    outside = layout.moved(0, -50, 300)
    assert outside.hidden() == [0], "a shape wholly outside the image is hidden"


def test_edits_leave_the_original_as_it_was(book):
    before = book.render()
    shapes = list(book.shapes)
    noises = [s.noise.copy() for s in book.shapes]
    stuff, stuff_image, stuff_ids = book.stuff.copy(), book.stuff_image.copy(), dict(book.stuff_ids)
    book.moved(0, 10, 10).resized(1, 3).removed(2).added(TRIANGLE, 50, 50, 20).render()
    book.removed(0)
    book.added(CIRCLE, 1, 1, 4)
    assert book.shapes == shapes and all(np.array_equal(s.noise, n) for s, n in zip(book.shapes, noises))
    assert np.array_equal(book.stuff, stuff) and np.array_equal(book.stuff_image, stuff_image)
    assert book.stuff_ids == stuff_ids
    assert_same_scene(book.render(), before)
    with pytest.raises(ValueError):
        book.stuff_image[0, 0, 0] = 1.0  # shared between layouts: read-only
    with pytest.raises(ValueError):
        book.shapes[0].noise[0, 0] = 1.0
    with pytest.raises(AttributeError):
        book.shapes[0].cy = 3.0  # frozen


@pytest.mark.parametrize("edit, error, message", [
    (lambda l: l.added(7, 10, 10, 5), ValueError, "category is 7; give CIRCLE"),
    (lambda l: l.added(SKY, 10, 10, 5), ValueError, "stuff class"),
    (lambda l: l.added("circle", 10, 10, 5), TypeError, "category must be a whole number"),
    (lambda l: l.moved(5, 10, 10), IndexError, "5 shape"),
    (lambda l: l.resized(-1, 10), IndexError, "numbered 0 to 4"),
    (lambda l: l.removed(9), IndexError, "there is no shape 9"),
    (lambda l: l.removed(1.0), TypeError, "k must be a whole number"),
    (lambda l: l.resized(0, 0), ValueError, "size is 0"),
    (lambda l: l.resized(0, -3.5), ValueError, "above 0"),
    (lambda l: l.resized(0, float("inf")), ValueError, "finite"),
    (lambda l: l.added(CIRCLE, 10, 10, float("nan")), ValueError, "finite"),
    (lambda l: l.resized(0, "big"), TypeError, "size must be a number"),
    (lambda l: l.moved(0, float("nan"), 10), ValueError, "cy is nan"),
    (lambda l: l.moved(0, 10, float("-inf")), ValueError, "cx is -inf"),
    (lambda l: l.moved(0, None, 10), TypeError, "cy must be a number"),
    (lambda l: l.added(CIRCLE, "10", 10, 5), TypeError, "cy must be a number"),
    (lambda l: l.moved(0, 10, 1e300), ValueError, "at most"),
    (lambda l: l.added(CIRCLE, 10, 10, 5, color=(1, 2, 3)), ValueError, "from 0 to 1"),
    (lambda l: l.added(CIRCLE, 10, 10, 5, color="red"), TypeError, "color must be"),
])
def test_bad_edits_say_what_to_give(book, edit, error, message):
    with pytest.raises(error, match=message):
        edit(book)


def test_bad_layouts_and_shapes_say_what_is_wrong(book, blank):
    with pytest.raises(IndexError, match="0 shape"):
        blank.removed(0)
    with pytest.raises(ValueError, match="used more than once"):
        synthetic.SceneLayout(book.stuff, book.stuff_image, book.stuff_ids, [book.shapes[0], book.shapes[0]])
    with pytest.raises(ValueError, match="stuff has categories"):
        synthetic.SceneLayout(np.ones_like(book.stuff), book.stuff_image, {}, [])
    with pytest.raises(TypeError, match="stuff_image"):
        synthetic.SceneLayout(book.stuff, book.stuff_image[:5], {}, [])
    with pytest.raises(TypeError, match="must be a Shape"):
        synthetic.SceneLayout(book.stuff, book.stuff_image, {}, ["circle"])
    with pytest.raises(ValueError, match="noise"):
        synthetic.SceneLayout(book.stuff, book.stuff_image, {},
                              [synthetic.Shape(CIRCLE, 5, 5, 3, 9, noise=np.zeros((4, 4)))])
    with pytest.raises(ValueError, match="segment_id is 0"):
        synthetic.Shape(CIRCLE, 5, 5, 3, 0)
    with pytest.raises(ValueError, match="aspect"):
        synthetic.Shape(RECTANGLE, 5, 5, 3, 1, aspect=0)
    with pytest.raises(TypeError, match="angles"):
        synthetic.Shape(TRIANGLE, 5, 5, 3, 1, angles=(0.0, 1.0))
    with pytest.raises(ValueError, match="category is 0"):
        synthetic.Shape(0, 5, 5, 3, 1)

"""The book's shared examples: one photo batch and one trained model on one held-out scene."""
import pytest
import torch

from detr_explained import examples, synthetic


def test_photo_batch_is_two_real_images_of_different_sizes():
    batch = examples.photo_batch()
    assert [tuple(x.shape) for x in batch.images] == [(3, 375, 320), (3, 256, 409)]
    assert batch.photo.size == (512, 600) and batch.crop.size == (512, 320)
    assert batch.names == ("portrait", "landscape")
    # normalised: ImageNet mean/std leaves negative values
    assert all(x.min() < 0 for x in batch.images)
    # fresh tensors on every call: a student's edit does not leak into the next call
    batch.images[0].zero_()
    assert examples.photo_batch().images[0].abs().sum() > 0


def test_book_scene_is_the_trained_model_on_the_held_out_scene():
    book = examples.book_scene()
    assert book.scene.ids.shape == (128, 128)
    assert (book.scene.ids == synthetic.held_out_scene(synthetic.BOOK_SCENE).ids).all()
    assert book.trace.pred_logits.shape[:2] == (1, book.model.config.num_queries)
    names = {s["category_id"] for s in book.truth}
    assert names and names <= set(synthetic.CATEGORY_NAMES)
    # the trained model keeps queries on this scene and its merge has segments
    assert len(book.traced.result.segments_info) >= 3
    other = examples.book_scene(model=book.model, index=0)
    assert other.model is book.model and (other.scene.ids != book.scene.ids).any()
    with pytest.raises(ValueError, match="held-out scene number"):
        examples.book_scene(index=-1)

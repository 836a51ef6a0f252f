"""The sine positional encoding: rows in the first half of the channels, columns in the second."""
import math

import torch

from detr_explained.position_encoding import SinePositionEncoding


def test_shape_and_halves():
    mask = torch.zeros(1, 5, 7, dtype=torch.bool)
    pos = SinePositionEncoding(128)(mask)
    assert pos.shape == (1, 256, 5, 7)
    rows, columns = pos[0, :128], pos[0, 128:]
    assert torch.allclose(rows, rows[:, :, :1].expand_as(rows))       # constant along a row
    assert torch.allclose(columns, columns[:, :1, :].expand_as(columns))  # constant along a column


def test_first_channel_pair_is_sin_cos_of_normalised_coordinate():
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    pos = SinePositionEncoding(128)(mask)
    y = torch.arange(1, 5, dtype=torch.float32) / (4 + 1e-6) * 2 * math.pi
    assert torch.allclose(pos[0, 0, :, 0], y.sin(), atol=1e-6)
    assert torch.allclose(pos[0, 1, :, 0], y.cos(), atol=1e-6)


def test_padding_does_not_shift_real_positions():
    mask = torch.zeros(1, 6, 6, dtype=torch.bool)
    padded = mask.clone()
    padded[0, 4:, :] = True
    alone = SinePositionEncoding(16)(torch.zeros(1, 4, 6, dtype=torch.bool))
    assert torch.allclose(SinePositionEncoding(16)(padded)[..., :4, :], alone)

"""Stage 3: box embeddings (queries) against the encoded image (keys), one softmax per query."""
import torch

from detr_explained.attention_maps import BoxAttentionMaps


def maps_and_inputs(seed=0):
    torch.manual_seed(seed)
    module = BoxAttentionMaps(32, 32, num_heads=4)
    queries = torch.randn(2, 5, 32)                 # (B, N, d)
    memory = torch.randn(2, 32, 3, 4)               # (B, d, h, w)
    mask = torch.zeros(2, 3, 4, dtype=torch.bool)
    mask[1, :, 3:] = True                           # image 1 has a padded column
    return module, queries, memory, mask


def test_shape_and_one_softmax_per_query():
    module, queries, memory, mask = maps_and_inputs()
    maps = module(queries, memory, mask)
    assert maps.shape == (2, 5, 4, 3, 4)            # (B, N, M, h, w)
    assert torch.allclose(maps.sum((2, 3, 4)), torch.ones(2, 5))
    per_head = maps.sum((3, 4))                     # a head alone does not sum to 1
    assert not torch.allclose(per_head, torch.ones_like(per_head))
    assert (maps[1, :, :, :, 3:] == 0).all()        # padded cells get nothing


def test_matches_a_plain_computation():
    module, queries, memory, mask = maps_and_inputs(1)
    q = module.q_linear(queries)                                        # (B, N, d)
    k = module.k_linear(memory.flatten(2).transpose(1, 2))              # (B, hw, d): Linear per cell
    q = q.view(2, 5, 4, 8)
    k = k.view(2, 12, 4, 8)
    scores = torch.einsum("bqnc,bpnc->bqnp", q, k) / 8 ** 0.5           # (B, N, M, hw)
    scores = scores.masked_fill(mask.flatten(1)[:, None, None], float("-inf"))
    expected = scores.flatten(2).softmax(-1).view(2, 5, 4, 3, 4)
    assert torch.allclose(module(queries, memory, mask), expected, atol=1e-6)


def test_query_and_key_are_not_interchangeable():
    """Swapping roles gives different maps: which tensor is the query matters."""
    module, queries, memory, _ = maps_and_inputs(2)
    right = module(queries, memory)
    swapped_q = module.k_linear(queries)            # the key projection applied to the queries
    assert not torch.allclose(module.q_linear(queries), swapped_q)
    assert right.shape[1] == queries.shape[1]

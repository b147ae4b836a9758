"""gan_utils.metrics against hand-computed cases: 1-NN on points of a line, cosine vs Euclidean,
k-NN votes and ties, blockwise evaluation, batched encoding in eval mode, the split and PCA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_utils import metrics

# Reference points on a line with labels; queries whose nearest neighbours are easy to read off.
REF = torch.tensor([[0.0], [1.0], [5.0], [6.0], [10.0]])
REF_Y = torch.tensor([0, 0, 1, 1, 2])
QUERY = torch.tensor([[0.4], [2.9], [3.1], [5.6], [9.0], [100.0]])


def test_nearest_neighbours_on_a_line() -> None:
    # 0.4 -> 0; 2.9 -> 1 (|2.9-1| = 1.9 < 2.1); 3.1 -> 5 (2.1 > 1.9); 5.6 -> 6; 9 -> 10; 100 -> 10
    idx = metrics.nearest_neighbours(QUERY, REF)
    assert idx[:, 0].tolist() == [0, 1, 2, 3, 4, 4]
    idx2 = metrics.nearest_neighbours(QUERY, REF, k=2)
    assert idx2.tolist() == [[0, 1], [1, 2], [2, 1], [3, 2], [4, 3], [4, 3]]


def test_one_nn_accuracy_hand_computed() -> None:
    # predictions 0, 0, 1, 1, 2, 2; the true labels below disagree on the 2nd and the last query
    y = torch.tensor([0, 1, 1, 1, 2, 0])
    assert metrics.nearest_neighbour_accuracy(REF, REF_Y, QUERY, y) == pytest.approx(4 / 6)
    assert metrics.knn_accuracy(REF, REF_Y, QUERY, y, k=1) == pytest.approx(4 / 6)


def test_one_nn_tie_goes_to_the_earliest_reference_point() -> None:
    ref = torch.tensor([[0.0], [2.0]])
    assert metrics.knn_predict(ref, torch.tensor([7, 3]), torch.tensor([[1.0]])).tolist() == [7]
    assert metrics.knn_predict(ref.flip(0), torch.tensor([3, 7]), torch.tensor([[1.0]])).tolist() == [3]


def test_cosine_and_euclidean_disagree_where_they_should() -> None:
    # (10, 0) is far from (1, 0.1) in Euclidean distance but points the same way.
    ref = torch.tensor([[10.0, 0.0], [0.0, 1.0]])
    q = torch.tensor([[1.0, 0.1], [0.0, 1.2]])
    assert metrics.nearest_neighbours(q, ref, metric="euclidean")[:, 0].tolist() == [1, 1]
    assert metrics.nearest_neighbours(q, ref, metric="cosine")[:, 0].tolist() == [0, 1]
    # cosine ignores the scale of either side: rescaling rows changes nothing
    scaled = metrics.nearest_neighbours(q * torch.tensor([[3.0], [0.2]]), ref * 7, metric="cosine")
    assert scaled[:, 0].tolist() == [0, 1]


def test_knn_vote_majority_and_tie_break() -> None:
    ref = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    y = torch.tensor([5, 1, 1, 5])
    # query 0.1: neighbours 0 (5), 1 (1), 2 (1): k=3 majority says 1 although the nearest is 5
    assert metrics.knn_predict(ref, y, torch.tensor([[0.1]]), k=3).tolist() == [1]
    # query 0.9, k=2: neighbours 1 (label 1, nearer) and 0 (label 5): one vote each -> nearer wins
    assert metrics.knn_predict(ref, y, torch.tensor([[0.9]]), k=2).tolist() == [1]
    # query 0.4, k=2: neighbours 0 (label 5, nearer) and 1 (label 1) -> 5
    assert metrics.knn_predict(ref, y, torch.tensor([[0.4]]), k=2).tolist() == [5]


def test_blockwise_distances_match_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    ref, q = torch.randn(300, 7, generator=g), torch.randn(123, 7, generator=g)
    brute = torch.cdist(q.double(), ref.double()).argmin(1)
    for rows in (1, 300 * 5, 10**9):  # one query per block, five per block, everything at once
        assert torch.equal(metrics.nearest_neighbours(q, ref, max_entries=rows)[:, 0], brute)
    cos = (torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(ref, dim=1).T).argmax(1)
    assert torch.equal(metrics.nearest_neighbours(q, ref, metric="cosine", max_entries=1000)[:, 0], cos)


def test_images_are_flattened_and_bad_input_is_refused() -> None:
    imgs = torch.zeros(3, 1, 2, 2)
    imgs[1] += 1.0
    imgs[2] += 2.0
    assert metrics.nearest_neighbours(torch.full((1, 1, 2, 2), 1.2), imgs)[:, 0].tolist() == [1]
    with pytest.raises(ValueError, match="'euclidean', 'cosine'"):
        metrics.nearest_neighbours(QUERY, REF, metric="manhattan")
    with pytest.raises(ValueError, match="features"):
        metrics.nearest_neighbours(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="k=9"):
        metrics.nearest_neighbours(QUERY, REF, k=9)
    with pytest.raises(ValueError, match="labels"):
        metrics.knn_accuracy(REF, REF_Y[:3], QUERY, torch.zeros(6, dtype=torch.long))


class _CountingBN(nn.Module):
    """Linear map followed by BatchNorm: in train mode a row's output depends on its batch."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.lin(x.flatten(1)))


def test_encode_dataset_uses_eval_mode_no_grad_and_restores_mode() -> None:
    torch.manual_seed(0)
    enc = _CountingBN()
    with torch.no_grad():
        enc.bn.running_mean.fill_(0.5)
        enc.bn.running_var.fill_(4.0)
    x = torch.randn(10, 1, 2, 2)
    enc.train()
    feats = metrics.encode_dataset(enc, x, batch_size=3)      # 4 batches: 3, 3, 3, 1
    assert enc.training, "the module's train mode must be restored"
    assert not feats.requires_grad and feats.shape == (10, 3)
    enc.eval()
    with torch.no_grad():
        expected = enc(x)
    assert torch.allclose(feats, expected, atol=1e-6)         # eval statistics, independent of batching
    assert torch.equal(enc.bn.running_mean, torch.full((3,), 0.5))  # running stats untouched
    # a plain function works too
    assert torch.equal(metrics.encode_dataset(lambda t: 2 * t, x, batch_size=4), 2 * x.flatten(1))


def test_fixed_split_is_disjoint_complete_and_seeded() -> None:
    ref, qry = metrics.fixed_split(100, 20, seed=3)
    assert len(ref) == 80 and len(qry) == 20
    assert set(ref.tolist()).isdisjoint(qry.tolist())
    assert sorted(ref.tolist() + qry.tolist()) == list(range(100))
    torch.manual_seed(12345)  # the global RNG must not matter
    again = metrics.fixed_split(100, 20, seed=3)
    assert torch.equal(again[1], qry)
    assert not torch.equal(metrics.fixed_split(100, 20, seed=4)[1], qry)
    with pytest.raises(ValueError, match="n_query"):
        metrics.fixed_split(10, 10)


def test_pca_recovers_the_dominant_axis() -> None:
    # Points on the line y = 2x (plus tiny noise): the first axis is (1, 2)/sqrt(5), ~all variance.
    t = torch.linspace(-3, 3, 50)
    g = torch.Generator().manual_seed(0)
    pts = torch.stack([t, 2 * t], 1) + 1e-3 * torch.randn(50, 2, generator=g) + torch.tensor([4.0, -1.0])
    proj, ratio = metrics.pca(pts, 1)
    assert ratio[0].item() == pytest.approx(1.0, abs=1e-5)
    expected = (t * (1 + 4) / 5 ** 0.5)  # projection of (t, 2t) on (1, 2)/sqrt(5), centred
    assert torch.allclose(proj[:, 0], expected - expected.mean(), atol=1e-2)
    # exact case: the variances along the axes of a centred diagonal design
    x = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    proj2, ratio2 = metrics.pca(x, 2)
    assert torch.allclose(ratio2, torch.tensor([18 / 20, 2 / 20]))
    assert torch.allclose(proj2.abs(), x.abs())

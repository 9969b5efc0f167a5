import math

import pytest
import torch

from metad2a.nn.set_pool import SetPool, encode_dataset
from metad2a.nn.set_transformer import FUSED_MIN_LEN, MAB, PMA, SAB


def test_mab_matches_written_out_equations():
    mab = MAB(6, 5, 8, num_heads=2)
    Q, K = torch.randn(3, 4, 6), torch.randn(3, 7, 5)
    q, k, v = mab.fc_q(Q), mab.fc_k(K), mab.fc_v(K)
    heads = []
    for h in range(2):  # per head, scale by sqrt(dim_V) = sqrt(8), not sqrt(4)
        sl = slice(4 * h, 4 * h + 4)
        A = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(8), -1)
        heads.append(q[..., sl] + A @ v[..., sl])
    O = torch.cat(heads, -1)
    expected = O + torch.relu(mab.fc_o(O))
    torch.testing.assert_close(mab(Q, K), expected, rtol=1e-5, atol=1e-6)


def _with_biases(module: torch.nn.Module) -> torch.nn.Module:
    """Default init plus large biases: the folded pooling drops the key bias (it cancels in the softmax)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 2.0)
    return module


@pytest.mark.parametrize("n", [5, FUSED_MIN_LEN - 1, FUSED_MIN_LEN, 300])
def test_inference_attention_is_the_written_out_attention(n):
    torch.manual_seed(n)
    mab = _with_biases(MAB(12, 12, 8, num_heads=4))
    X = torch.randn(3, n, 12)
    fast = mab.self_attend_inference(mab.project_self(X))
    torch.testing.assert_close(fast, mab(X, X), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast, mab.attend(*mab.project_self(X).split(8, -1)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seeds", [1, 3])
def test_folded_pooling_is_pooling_by_attention(seeds):
    torch.manual_seed(seeds)
    pma = _with_biases(PMA(8, 4, seeds))
    X = torch.randn(5, 17, 8) * 3
    torch.testing.assert_close(pma.pool_inference(X), pma(X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [20, 150])
def test_set_pool_inference_equals_forward(n):
    torch.manual_seed(n)
    pool = _with_biases(SetPool(16, 1, 8, dim_hidden=8, num_heads=4))
    X = torch.randn(4, n, 16)
    torch.testing.assert_close(pool.infer(X), pool(X), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pool.infer_projected(pool.project(X)), pool(X), rtol=1e-5, atol=1e-5)


def test_shapes_and_batch_of_one():
    pool = SetPool(16, 1, 8, dim_hidden=8, num_heads=4)
    assert pool(torch.randn(5, 20, 16)).shape == (5, 1, 8)
    assert PMA(8, 4, 3)(torch.randn(2, 9, 8)).shape == (2, 3, 8)
    assert SAB(16, 8, 4)(torch.randn(1, 9, 16)).shape == (1, 9, 8)
    intra, inter = SetPool(16, 1, 8, dim_hidden=8), SetPool(8, 1, 8, dim_hidden=8)
    out = encode_dataset(intra, inter, torch.randn(1, 3 * 20, 16), num_sample=20)
    assert out.shape == (1, 8)  # the original squeezes this to [8]


def test_dataset_encoding_is_permutation_invariant():
    intra, inter = SetPool(16, 1, 8, dim_hidden=8), SetPool(8, 1, 8, dim_hidden=8)
    X = torch.randn(2, 4, 20, 16)
    ref = encode_dataset(intra, inter, X.reshape(2, 80, 16), 20)
    shuffled = X[:, :, torch.randperm(20)]  # samples within each class
    shuffled = shuffled[:, torch.randperm(4)]  # classes
    torch.testing.assert_close(encode_dataset(intra, inter, shuffled.reshape(2, 80, 16), 20), ref,
                               rtol=1e-5, atol=1e-6)


def test_batched_encoding_equals_per_item_loop():
    from metad2a.models.predictor import PredictorModel
    from tests.reference_dvae import Reference

    m = PredictorModel(7, 8, hs=16, nz=8, feature_dim=12, num_sample=5)
    X = torch.randn(4, 3 * 5, 12)
    torch.testing.assert_close(m.set_encode(X), Reference(m).set_encode_per_item(X), rtol=1e-5, atol=1e-5)


def test_bad_shapes_are_clear_errors():
    intra, inter = SetPool(16, 1, 8, dim_hidden=8), SetPool(8, 1, 8, dim_hidden=8)
    with pytest.raises(ValueError, match="multiple of num_sample"):
        encode_dataset(intra, inter, torch.randn(2, 21, 16), 20)
    with pytest.raises(ValueError, match="expected features of shape"):
        encode_dataset(intra, inter, torch.randn(21, 16), 20)
    with pytest.raises(ValueError, match="divisible"):
        MAB(4, 4, 10, num_heads=4)

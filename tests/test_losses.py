"""The chunked head + cross-entropy equals the plain one, in value and in gradients."""

import pytest
import torch

from growlib.losses import chunked_cross_entropy, plain_cross_entropy


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
@pytest.mark.parametrize("vocab", [300, 320])  # padded to 320 inside; already a multiple of 64
@pytest.mark.parametrize("upstream", [1.0, 3.0])  # loss.backward() and a scaled loss
def test_chunked_loss_and_gradients_match_the_plain_ones(chunk, vocab, upstream):
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(100, 16, generator=gen, requires_grad=True)
    weight = torch.randn(vocab, 16, generator=gen, requires_grad=True)
    targets = torch.randint(0, vocab, (100,), generator=gen)
    plain = plain_cross_entropy(feats, weight, targets)
    g_plain = torch.autograd.grad(plain * upstream, (feats, weight))
    chunked = chunked_cross_entropy(feats, weight, targets, chunk)
    g_chunked = torch.autograd.grad(chunked * upstream, (feats, weight))
    assert g_chunked[1].shape == weight.shape
    assert abs(chunked.item() - plain.item()) <= 1e-5 * abs(plain.item())
    for a, b in zip(g_chunked, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_without_gradients_it_is_the_same_number():
    feats, weight = torch.randn(50, 8), torch.randn(40, 8)
    targets = torch.randint(0, 40, (50,))
    with torch.no_grad():
        assert chunked_cross_entropy(feats, weight, targets, 16).item() == pytest.approx(
            plain_cross_entropy(feats, weight, targets).item(), rel=1e-6)


def test_bad_chunk():
    with pytest.raises(ValueError, match="chunk=0"):
        chunked_cross_entropy(torch.randn(2, 2), torch.randn(3, 2), torch.zeros(2, dtype=torch.long), 0)

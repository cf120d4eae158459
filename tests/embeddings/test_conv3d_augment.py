"""The conv3d embedding's transverse-symmetry augmentation (sbi_astro.embeddings.volume)."""

from __future__ import annotations

import itertools

import torch

from sbi_astro.embeddings.volume import Conv3dEmbedding, random_transverse_symmetry


def _images(box: torch.Tensor) -> list[torch.Tensor]:
    """All 8 x n^2 transverse symmetry images of one box ``(C, n, n, L)``."""
    n = box.shape[1]
    out = []
    for sx, sy, dx, dy, swap in itertools.product((1, -1), (1, -1), range(n), range(n),
                                                  (False, True)):
        i = (sx * torch.arange(n) + dx) % n
        j = (sy * torch.arange(n) + dy) % n
        b = box[:, i][:, :, j]
        out.append(b.transpose(1, 2) if swap else b)
    return out


def test_each_box_becomes_one_of_its_symmetry_images_and_all_kinds_occur():
    x = torch.randn(64, 1, 4, 4, 3)
    y = random_transverse_symmetry(x, torch.Generator().manual_seed(0))
    hits = []
    for b in range(64):
        matches = [k for k, im in enumerate(_images(x[b])) if torch.equal(im, y[b])]
        assert matches, f"box {b} is not a symmetry image of its input"
        hits.append(matches[0])
    # 64 draws over 128 images: several distinct transforms, not a fixed one
    assert len(set(hits)) > 20
    # line of sight untouched: each LOS slice keeps its values
    torch.testing.assert_close(y.sum((2, 3)), x.sum((2, 3)))


def test_augmentation_only_in_training_mode():
    torch.manual_seed(0)
    net = Conv3dEmbedding([8, 8, 16], out_features=4, channels=[4, 8], los_stride=4,
                          augment=True)
    x = torch.randn(5, 8, 8, 16)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(2)
    b = net(x)
    assert not torch.allclose(a, b)  # different random symmetries, different summaries

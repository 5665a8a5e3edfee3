"""nets.augment: batched crop + flip + normalization against per-image references."""
from __future__ import annotations

import numpy as np
import torch

from nets.augment import Augmenter, Normalizer, random_crop_flip


def candidates(img: np.ndarray, pad: int) -> list[np.ndarray]:
    """Every crop of the zero-padded image, flipped and not (per-image reference)."""
    c, h, w = img.shape
    padded = np.zeros((c, h + 2 * pad, w + 2 * pad), dtype=img.dtype)
    padded[:, pad:pad + h, pad:pad + w] = img
    out = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            out += [crop, crop[:, :, ::-1]]
    return out


def test_every_output_is_a_crop_or_flipped_crop_and_all_occur():
    torch.manual_seed(0)
    x = torch.randint(1, 256, (400, 2, 6, 7), dtype=torch.uint8)  # nonzero pixels: zero padding is visible
    gen = torch.Generator().manual_seed(3)
    y = random_crop_flip(x, 2, True, gen).numpy()
    seen = set()
    for i in range(x.shape[0]):
        cands = candidates(x[i].numpy(), 2)
        hits = [k for k, cand in enumerate(cands) if np.array_equal(cand, y[i])]
        assert hits, f"image {i} is not a crop of its padded input"
        seen.add(hits[0])
    assert len(seen) == 2 * 25  # every offset and both flips occur in 400 draws


def test_no_pad_no_flip_is_identity_and_flip_only_flips():
    x = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(random_crop_flip(x, 0, False, gen), x)
    y = random_crop_flip(x, 0, True, gen)
    for i in range(5):
        assert torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(-1))


def test_seeded_generator_reproduces_and_state_resumes():
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    norm = Normalizer((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    a, b = Augmenter(norm, seed=7), Augmenter(norm, seed=7)
    assert torch.equal(a(x), b(x))
    state = a.get_state()
    first = a(x)
    a.set_state(state)
    assert torch.equal(a(x), first)
    c, d = Augmenter(norm, seed=11), Augmenter(norm, seed=11)
    assert torch.equal(c.permutation(10), d.permutation(10)) and sorted(d.permutation(10).tolist()) == list(range(10))


def test_normalizer_formula():
    x = torch.randint(0, 256, (3, 2, 5, 5), dtype=torch.uint8)
    mean, std = (0.3, 0.6), (0.2, 0.1)
    y = Normalizer(mean, std)(x).numpy()
    ref = (x.numpy() / 255.0 - np.array(mean)[None, :, None, None]) / np.array(std)[None, :, None, None]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_epoch_plan_applies_exactly_the_planned_crop_and_flip():
    torch.manual_seed(1)
    images = torch.randint(0, 256, (37, 3, 8, 8), dtype=torch.uint8)
    norm = Normalizer((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))  # identity on the 0..255 scale
    aug = Augmenter(norm, pad=3, flip=True, seed=2)
    plan = aug.plan_epoch(37)
    assert sorted(plan.order.tolist()) == list(range(37))
    assert plan.dy.min() >= 0 and plan.dy.max() <= 6 and plan.dx.min() >= 0 and plan.dx.max() <= 6
    got = torch.cat([aug.apply(images, plan, s, min(s + 10, 37)) for s in range(0, 37, 10)]).round().to(torch.uint8)
    for i in range(37):
        padded = np.zeros((3, 14, 14), dtype=np.uint8)
        padded[:, 3:11, 3:11] = images[plan.order[i]].numpy()
        want = padded[:, plan.dy[i]:plan.dy[i] + 8, plan.dx[i]:plan.dx[i] + 8]
        if plan.flips[i]:
            want = want[:, :, ::-1]
        np.testing.assert_array_equal(got[i].numpy(), want)

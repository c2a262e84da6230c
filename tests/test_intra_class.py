"""Metrics for conditional samples: density and coverage (Naeem et al., 2020) against their
formula written out with full distance matrices, and the per-class figures (intra-FID, Miyato &
Koyama, 2018) against the case they exist for: samples of the wrong class that the
unconditional figures cannot see."""
from types import SimpleNamespace
import numpy as np
import pytest
import evaluate as E

ARGS = SimpleNamespace(k=3, kid_subsets=5, kid_size=1000, seed=0, samples="S", ref="R")


def reference(real, fake, k):
    """Density and coverage as the paper defines them, by brute force: each real point's ball
    reaches its k-th nearest real neighbour (the point itself, at 0, not counted)."""
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=2)
    d_rf = np.linalg.norm(real[:, None] - fake[None], axis=2)                  # (N, M)
    nnd = np.sort(d_rr, 1)[:, k]
    inside = d_rf < nnd[:, None]
    return inside.sum() / (k * len(fake)), inside.any(1).mean()


@pytest.mark.parametrize("k", [1, 3, 5])
def test_density_and_coverage_equal_the_formula_on_random_features(k):
    for seed in range(5):
        rng = np.random.default_rng(seed)
        real = rng.normal(size=(60, 7))
        fake = rng.normal(size=(45, 7)) * 1.3 + 0.4
        density, coverage = E.density_coverage(real, fake, k)
        want = reference(real, fake, k)
        assert density == pytest.approx(want[0], abs=1e-6)
        assert coverage == pytest.approx(want[1], abs=1e-6)


def test_density_counts_a_sample_in_many_balls_and_coverage_counts_real_balls():
    """Five real points on a line 0..4 (k = 1: each ball reaches the next point, radius 1).
    Samples all at 0.1 sit in the balls of 0 and 1 only: density 2 / k = 2 (above 1: the
    samples crowd where real points are dense), coverage 2 of the 5 real balls, while
    precision is 1."""
    real = np.stack([np.arange(5.0), np.zeros(5)], 1)
    fake = np.tile([[0.1, 0.0]], (4, 1))
    assert E.density_coverage(real, fake, 1) == pytest.approx((2.0, 0.4))
    assert E.precision_recall(real, fake, 1)[0] == 1.0


def clusters(rng, n, centres):
    """n points around each centre in 4-d -> features (n len(centres), 4), labels."""
    f = np.concatenate([rng.normal(size=(n, 4)) * 0.5 + c for c in centres])
    return f, np.repeat(np.arange(len(centres)), n)


def test_intra_class_figures_see_samples_of_the_wrong_class():
    """Two classes far apart. Samples asked for 'a' that look like 'b' and the other way round
    have the real images' distribution as a whole (FD, precision near the right samples'), but
    per class they are far from their real images: intra-FD high, per-class precision and
    coverage 0. The real folders come in the other order ('b' first), so a class is matched by
    its name, not by its position."""
    rng = np.random.default_rng(0)
    g, ref_labels = clusters(rng, 40, [-5, 5])                       # real: b at -5, a at +5
    right, labels = clusters(rng, 40, [5, -5])                       # samples: a, then b
    wrong = right[::-1].copy()                                       # a's samples look like b
    names, ref_names = ["a", "b"], ["b", "a"]
    good = E.intra_class(right, labels, names, g, ref_labels, ref_names, ARGS)
    bad = E.intra_class(wrong, labels, names, g, ref_labels, ref_names, ARGS)
    assert abs(E.fd(g, wrong) - E.fd(g, right)) < 0.1
    assert good["intra_FD"] < 0.2 and bad["intra_FD"] > 100
    assert good["intra_precision"] > 0.8 and bad["intra_precision"] == 0
    assert good["intra_coverage"] > 0.8 and bad["intra_coverage"] == 0
    assert set(good["per_class"]) == {"a", "b"} and good["per_class"]["a"]["n"] == 40
    assert good["intra_KID"] < 0.05 < bad["intra_KID"]


def test_a_small_class_gets_its_figure_with_a_warning_and_a_tiny_one_is_left_out(capsys):
    """A class with fewer images than the features' dimension: a singular covariance, a figure
    and a warning. A class with no more images than k: no ball can be drawn, so it is left out
    with a warning, never a crash."""
    rng = np.random.default_rng(1)
    g = rng.normal(size=(30, 16))
    ref_labels = np.repeat([0, 1, 2], 10)
    f = rng.normal(size=(18, 16))
    labels = np.array([0] * 8 + [1] * 8 + [2] * 2)
    r = E.intra_class(f, labels, ["a", "b", "c"], g, ref_labels, ["a", "b", "c"], ARGS)
    said = capsys.readouterr().err
    assert set(r["per_class"]) == {"a", "b"} and np.isfinite(r["intra_FD"])
    assert "class 'a': 8 images for 16-d features" in said
    assert "class 'c' left out" in said and len(said.strip().splitlines()) == 3


def test_a_sample_class_without_real_images_is_one_line():
    f, labels = clusters(np.random.default_rng(2), 10, [0, 3])
    with pytest.raises(E.Fail, match="class folder 'b' of S has none of its name in --ref R"):
        E.intra_class(f, labels, ["a", "b"], f, labels, ["a", "c"], ARGS)

import json, math, os, shutil
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
import evaluate as E
from support import inception, lab
from support.classifier import Classifier, blur_window, held_out_accuracy, load_classifier
from support.inception import InceptionV3


def test_fd_equals_the_closed_form_of_two_gaussians():
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), with the root taken the plain way: the
    eigenvalues of the (non-symmetric) product S1 S2 are real and positive, Tr sqrt = sum of their
    roots."""
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(2, 4, 4))
    S1, S2 = A @ A.T + 0.1 * np.eye(4), B @ B.T + 0.1 * np.eye(4)                  # do not commute
    mu1, mu2 = rng.normal(size=(2, 4))
    tr_sqrt = np.sqrt(np.linalg.eigvals(S1 @ S2).real).sum()
    direct = ((mu1 - mu2) ** 2).sum() + np.trace(S1) + np.trace(S2) - 2 * tr_sqrt
    assert E.frechet_distance(mu1, S1, mu2, S2) == pytest.approx(direct, rel=1e-9)
    one_d = E.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]),
                               np.array([[9.0]]))
    assert one_d == pytest.approx((1 - 3) ** 2 + (2 - 3) ** 2)     # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    f1 = rng.multivariate_normal(mu1, S1, 40_000)                 # on samples: near the closed form
    f2 = rng.multivariate_normal(mu2, S2, 40_000)
    assert E.fd(f1, f2) == pytest.approx(direct, rel=0.05)


def test_fd_of_a_set_with_itself_is_zero_and_order_does_not_matter():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(300, 64))                    # 64-d from 300: a rank-deficient S is fine
    g = rng.normal(0.3, 1.5, size=(200, 64))
    assert abs(E.fd(f, f)) < 1e-8
    assert E.fd(f, g) == pytest.approx(E.fd(rng.permutation(f), rng.permutation(g)), rel=1e-9)
    assert E.fd(f, g) > 1


def test_fd_is_never_below_zero():
    """FD is a squared distance: a set against itself is 0, and rounding must not print it as
    below 0 (the unclamped sum gave -5.8e-11 on the first of these sets)."""
    for seed in range(5):
        f = np.random.default_rng(seed).normal(size=(50, 8)) * 100
        assert 0 <= E.fd(f, f) < 1e-8


def test_kid_kernel_on_a_hand_computed_case():
    """x = (1, 0), (0, 1); y = (1, 1), (0, 0); d = 2 and k(a, b) = (a.b / 2 + 1)^3. Off the
    diagonals a.b = 0, so E k(x, x') = E k(y, y') = 1; across, a.b is 1, 0, 1, 0, so
    E k(x, y) = (2 * 1.5^3 + 2) / 4 = 2.1875; MMD^2 = 1 + 1 - 2 * 2.1875. Without the 1/d the
    kernel gives -7; with the diagonal in, or k(x, y) counted once, other numbers."""
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert E.mmd2(x, y) == pytest.approx(1 + 1 - 2 * (2 * 1.5**3 + 2) / 4, rel=1e-12)
    x3 = np.array([[2.0, 0.0], [2.0, 2.0], [0.0, 1.0]])          # off-diagonal a.b = 4, 0, 2
    xx = 2 * ((4 / 2 + 1) ** 3 + 1 + (2 / 2 + 1) ** 3) / (3 * 2)
    yy = 1.0                                                       # y's two: a.b = 0
    cross = [(2 / 2 + 1) ** 3, 1, (4 / 2 + 1) ** 3, 1, (1 / 2 + 1) ** 3, 1]
    assert E.mmd2(x3, y) == pytest.approx(xx + yy - 2 * np.mean(cross), rel=1e-12)
    assert E.kid(x, y, subsets=3, size=10) == pytest.approx((E.mmd2(x, y), 0), abs=1e-12)


def test_kid_is_unbiased_and_grows_with_a_shift():
    """Two samples of one distribution: MMD^2 averages to 0 within its standard error (with the
    diagonal k(x_i, x_i) in, the estimate is biased upward by about E k(x, x) / m, here about 1)."""
    rng = np.random.default_rng(2)
    v = [E.mmd2(rng.normal(size=(20, 8)), rng.normal(size=(20, 8))) for _ in range(400)]
    assert abs(np.mean(v)) < 4 * np.std(v) / math.sqrt(len(v))
    x, y = rng.normal(size=(2, 400, 8))
    near, near_std = E.kid(x, y + 0.3, subsets=20, size=100)
    far, _ = E.kid(x, y + 1.0, subsets=20, size=100)
    assert near_std > 0 and 0 < near < far


def test_precision_recall_on_identical_disjoint_and_half_sets():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(100, 5))
    b = rng.normal(size=(100, 5)) + 50                                  # two far-apart clusters
    assert E.precision_recall(a, a) == (1.0, 1.0)
    assert E.precision_recall(a, b) == (0.0, 0.0)
    p, r = E.precision_recall(np.concatenate([a, b]), a)             # samples: half of the real set
    assert p == 1.0 and r == pytest.approx(0.5)


def test_precision_ball_reaches_the_third_neighbour():
    """Real points at 0, 1, ..., 9 on a line: the end point's 3rd neighbour (itself not counted) is
    at 3, so a sample at -2.5 is inside the real manifold and one at -3.5 is not (k = 2 or 4 would
    disagree)."""
    real = np.stack([np.arange(10.0), np.zeros(10)], 1)
    fake = lambda x: np.array([[x, 0.0], [4.0, 0.0], [5.0, 0.0], [6.0, 0.0]])   # and 3 inside
    assert E.precision_recall(real, fake(-2.5))[0] == 1.0
    assert E.precision_recall(real, fake(-3.5))[0] == 0.75


def test_inception_score_is_one_for_constant_and_k_for_confident_even_predictions():
    K = 5
    assert E.inception_score(np.full((100, K), 1 / K), splits=2)[0] == pytest.approx(1.0)
    same = np.tile(np.full(K, 1 / K) * [1, 2, 3, 2, 2] / 2, (100, 1))        # every x: one p(y | x)
    assert E.inception_score(same, splits=2)[0] == pytest.approx(1.0)
    onehot = np.eye(K)[np.arange(100) % K]                           # every split holds every class
    mean, std = E.inception_score(onehot, splits=2)
    assert mean == pytest.approx(K) and std == pytest.approx(0)


def test_inception_score_of_two_images_by_hand_and_no_split_left_empty():
    """p(y | x) = (1, 0) and (1/2, 1/2): p(y) = (3/4, 1/4), KL = log(4/3) and
    (log(2/3) + log 2) / 2, IS = exp of their mean (not the mean of their exps). One image per
    split is IS 1; fewer images than splits would leave a split empty (NaN): refused, naming
    --splits."""
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    kl = [math.log(4 / 3), (math.log(2 / 3) + math.log(2)) / 2]
    assert E.inception_score(p, splits=1)[0] == pytest.approx(math.exp(np.mean(kl)), rel=1e-9)
    assert E.inception_score(p, splits=2) == pytest.approx((1, 0))
    with pytest.raises(E.Fail, match="--splits 3 needs at least 3 images"):
        E.inception_score(p, splits=3)


def test_precision_counts_an_exact_copy_of_a_real_point():
    """A real point repeated k + 1 times has its k-th neighbour at distance 0, and a sample that
    is its exact copy lies in that ball: precision 1/26 exactly, the other 25 samples being far
    from every real point. The matrix-product distances of torch.cdist put copies ~1e-6 apart
    (the old code gave 0 on several of these seeds); the ball test must be exact."""
    k = 3
    for seed in range(10):
        rng = np.random.default_rng(seed)
        p = rng.normal(size=(1, 301)) * 3 + 1
        real = np.concatenate([np.repeat(p, k + 1, 0), rng.normal(size=(196, 301)) * 3 + 50])
        fake = np.concatenate([p, rng.normal(size=(25, 301)) * 3 - 50])
        r = E.radii(torch.tensor(real), k)
        assert (r[:k + 1] == 0).all() and (r[k + 1:] > 0).all()
        assert E.precision_recall(real, fake, k)[0] == 1 / 26


def test_inception_reads_0_1_as_minus_1_1_resized_bilinearly_to_299():
    """The graph's input: the image resized to 299 x 299 (bilinear, align_corners False: output
    pixel j reads source position (j + 1/2) 16/299 - 1/2) and mapped from [0, 1] to [-1, 1]. On a
    ramp 0..1 across 16 pixels, bilinear interpolation is exact: the first conv sees
    2 clip(source, 0, 15) / 15 - 1."""
    seen = []

    def stop(module, args):
        seen.append(args[0])
        raise StopIteration                                  # the rest of the network not needed

    net = InceptionV3().eval()
    net.Conv2d_1a_3x3.register_forward_pre_hook(stop)
    ramp = torch.arange(16.0).div(15).expand(1, 3, 16, 16)
    with pytest.raises(StopIteration):
        net(ramp)
    source = ((torch.arange(299.0) + 0.5) * 16 / 299 - 0.5).clamp(0, 15)
    assert seen[0].shape == (1, 3, 299, 299)
    assert torch.allclose(seen[0][0, 1, 7], 2 * source / 15 - 1, atol=1e-6)


def test_inception_score_logits_leave_the_fc_bias_out_and_features_are_the_mean():
    """The reference IS code (Salimans et al., TTUR, torch-fidelity) takes the softmax of
    pool_3 W^T, without fc's bias: a bias that changes the softmax leaves the logits and the score
    unchanged. FID's features are the global average of Mixed_7c's output."""
    torch.manual_seed(0)
    net = InceptionV3().eval()
    last = torch.randn(4, 2048, 3, 3)              # Mixed_7c's output, replaced by a known one
    net.Mixed_7c.register_forward_hook(lambda m, args, out: last)
    with torch.no_grad():
        net.fc.weight.normal_(0, 0.1)                                 # logits of about +-1.5
        net.fc.bias.normal_(0, 3)
        f, logits = net(torch.rand(4, 3, 16, 16), size=75)
    assert torch.allclose(f, last.mean((2, 3)), atol=1e-6)
    assert torch.allclose(logits, f @ net.fc.weight.T, atol=1e-5)
    p = logits.double().softmax(1).numpy()
    with torch.no_grad():
        with_bias = net.fc(f).double().softmax(1).numpy()
    assert E.inception_score(p, 1)[0] != pytest.approx(E.inception_score(with_bias, 1)[0])


def test_tf_average_pool_leaves_the_padding_out_and_the_last_block_pools_with_a_max():
    """TensorFlow's SAME pooling averages only the pixels inside the image: on ones, ones
    everywhere (counting the padding, a corner would be 4/9). Mixed_7b pools so; Mixed_7c, the
    2015 graph's last block, with a 3x3 max."""
    assert torch.equal(inception.tf_avg_pool(torch.ones(1, 1, 4, 5)), torch.ones(1, 1, 4, 5))
    net = InceptionV3().eval()
    for block, pool in ((net.Mixed_7b, inception.tf_avg_pool),
                        (net.Mixed_7c, lambda x: F.max_pool2d(x, 3, 1, 1))):
        seen = []
        block.branch_pool.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
        x = torch.randn(1, block.branch1x1.conv.in_channels, 3, 3)
        with torch.no_grad():
            block(x)
        assert torch.allclose(seen[0], pool(x))


WIRING = {   # each block's output, in the published order: (channels, the branches feeding them)
    "A": (lambda: inception.A(192, 32), 5, [(64, "branch1x1"), (64, "branch5x5_1 branch5x5_2"),
          (96, "branch3x3dbl_1 branch3x3dbl_2 branch3x3dbl_3"), (32, "branch_pool")]),
    "B": (lambda: inception.B(288), 7, [(384, "branch3x3"),
          (96, "branch3x3dbl_1 branch3x3dbl_2 branch3x3dbl_3"), (288, "")]),
    "C": (lambda: inception.C(768, 128), 5, [(192, "branch1x1"),
          (192, "branch7x7_1 branch7x7_2 branch7x7_3"),
          (192, " ".join(f"branch7x7dbl_{i}" for i in range(1, 6))), (192, "branch_pool")]),
    "D": (lambda: inception.D(768), 7, [(320, "branch3x3_1 branch3x3_2"),
          (192, " ".join(f"branch7x7x3_{i}" for i in range(1, 5))), (768, "")]),
    "E": (lambda: inception.E(1280, max_pool=False), 3, [(320, "branch1x1"),
          (384, "branch3x3_1 branch3x3_2a"), (384, "branch3x3_1 branch3x3_2b"),
          (384, "branch3x3dbl_1 branch3x3dbl_2 branch3x3dbl_3a"),
          (384, "branch3x3dbl_1 branch3x3dbl_2 branch3x3dbl_3b"), (192, "branch_pool")]),
}


@pytest.mark.parametrize("name", WIRING)
def test_each_block_is_wired_as_published(name):
    """Each slice of a block's output depends on exactly the branches that feed it in the
    published graph (pool slices on none): measured by which parameters get a gradient."""
    make, size, slices = WIRING[name]
    torch.manual_seed(0)
    block = make().eval()
    x = torch.randn(1, next(block.parameters()).shape[1], size, size)
    out = block(x)
    assert out.shape[1] == sum(c for c, _ in slices)
    lo = 0
    for c, branches in slices:
        block.zero_grad(set_to_none=True)
        out[:, lo:lo + c].sum().backward(retain_graph=True)
        fed = {n.split(".")[0] for n, p in block.named_parameters()
               if p.grad is not None and p.grad.abs().sum() > 0}
        assert fed == set(branches.split()), (lo, c)
        lo += c


def test_the_classifier_blurs_with_ssim_window_and_is_scored_in_eval_mode(tmp_path):
    """The training blur is SSIM's window, a normalised Gaussian of sigma 1.5 (checked against the
    closed form); a loaded classifier is in eval mode, and scoring the held-out images leaves the
    batch norm's running statistics alone."""
    i = np.arange(11) - 5
    g = np.exp(-(i[:, None] ** 2 + i[None] ** 2) / (2 * 1.5**2))
    w = blur_window(2, "cpu")
    assert w.shape == (2, 1, 11, 11) and torch.allclose(w[1, 0].double(), torch.tensor(g / g.sum()))
    assert np.allclose(E.gaussian_window(), g / g.sum())
    torch.manual_seed(0)
    net = Classifier(channels=1, num_classes=3, width=4)
    x = torch.rand(20, 1, 8, 8)
    y = torch.randint(0, 3, (20,))
    eval_mode = float((net.eval()(x)[1].argmax(1) == y).float().mean())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert held_out_accuracy(net.train(), x, y) == eval_mode
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    torch.save(dict(model="classifier", config=dict(channels=1, num_classes=3, width=4),
                    class_names=["a", "b", "c"], image_size=8, weights=net.state_dict()),
               tmp_path / "clf.pt")
    assert not load_classifier(str(tmp_path / "clf.pt"))[0].training


def slow_ssim(x, y, K1=0.01, K2=0.03):
    """SSIM of one (C, H, W) pair written as loops: each 11x11 window's weighted means, variances
    and covariance."""
    g = [[math.exp(-((i - 5) ** 2 + (j - 5) ** 2) / (2 * 1.5**2)) for j in range(11)]
         for i in range(11)]
    total = sum(map(sum, g))
    w = [[v / total for v in row] for row in g]
    C, H, W = x.shape
    out = []
    for c in range(C):
        for r in range(H - 10):
            for s in range(W - 10):
                px, py = x[c, r:r + 11, s:s + 11], y[c, r:r + 11, s:s + 11]
                ij = [(i, j) for i in range(11) for j in range(11)]
                mx = sum(w[i][j] * px[i, j] for i, j in ij)
                my = sum(w[i][j] * py[i, j] for i, j in ij)
                vx = sum(w[i][j] * (px[i, j] - mx) ** 2 for i, j in ij)
                vy = sum(w[i][j] * (py[i, j] - my) ** 2 for i, j in ij)
                cxy = sum(w[i][j] * (px[i, j] - mx) * (py[i, j] - my) for i, j in ij)
                top = (2 * mx * my + K1**2) * (2 * cxy + K2**2)
                out.append(top / ((mx**2 + my**2 + K1**2) * (vx + vy + K2**2)))
    return sum(out) / len(out)


def test_ssim_is_one_on_itself_symmetric_and_matches_the_loops():
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(2, 2, 13, 14))
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)
    assert E.ssim(x, x) == pytest.approx([1, 1])
    assert E.ssim(x, y) == pytest.approx(E.ssim(y, x), rel=1e-12)
    assert E.ssim(x, y) == pytest.approx([slow_ssim(x[i], y[i]) for i in range(2)], rel=1e-9)
    assert E.ssim(x, y).max() < 0.9


def test_psnr_of_known_noise():
    """+-0.1 on every pixel is MSE 0.01, 20 dB; +-0.05 is 26.02 dB; the figure is the mean over
    images."""
    x = np.full((2, 1, 4, 4), 0.5)
    sign = np.where(np.arange(16).reshape(4, 4) % 2, 1.0, -1.0)
    y = x + np.stack([0.1 * sign, 0.05 * sign])[:, None]
    expected = (10 * math.log10(1 / 0.01) + 10 * math.log10(1 / 0.0025)) / 2
    assert E.psnr(x, y) == pytest.approx(expected)


def test_inception_has_the_published_shapes():
    """Random weights: 2048 features and 1008 logits from any image size (here 75 px, the smallest
    it takes)."""
    f, logits = InceptionV3().eval()(torch.rand(2, 3, 16, 16), size=75)
    assert f.shape == (2, 2048) and logits.shape == (2, 1008)


def published_inception():
    """The FID weights file's names -> shapes, from the published Inception v3 layer table:
    (name, in, out, kh, kw)."""
    convs = [("Conv2d_1a_3x3", 3, 32, 3, 3), ("Conv2d_2a_3x3", 32, 32, 3, 3),
             ("Conv2d_2b_3x3", 32, 64, 3, 3), ("Conv2d_3b_1x1", 64, 80, 1, 1),
             ("Conv2d_4a_3x3", 80, 192, 3, 3)]
    for m, cin, pool in (("5b", 192, 32), ("5c", 256, 64), ("5d", 288, 64)):
        block = [("branch1x1", (cin, 64, 1, 1)),
                 ("branch5x5_1", (cin, 48, 1, 1)),
                 ("branch5x5_2", (48, 64, 5, 5)),
                 ("branch3x3dbl_1", (cin, 64, 1, 1)),
                 ("branch3x3dbl_2", (64, 96, 3, 3)),
                 ("branch3x3dbl_3", (96, 96, 3, 3)),
                 ("branch_pool", (cin, pool, 1, 1))]
        convs += [(f"Mixed_{m}.{n}", *s) for n, s in block]
    convs += [("Mixed_6a.branch3x3", 288, 384, 3, 3), ("Mixed_6a.branch3x3dbl_1", 288, 64, 1, 1),
              ("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3), ("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3)]
    for m, c in (("6b", 128), ("6c", 160), ("6d", 160), ("6e", 192)):
        block = [("branch1x1", (768, 192, 1, 1)),
                 ("branch7x7_1", (768, c, 1, 1)),
                 ("branch7x7_2", (c, c, 1, 7)),
                 ("branch7x7_3", (c, 192, 7, 1)),
                 ("branch7x7dbl_1", (768, c, 1, 1)),
                 ("branch7x7dbl_2", (c, c, 7, 1)),
                 ("branch7x7dbl_3", (c, c, 1, 7)),
                 ("branch7x7dbl_4", (c, c, 7, 1)),
                 ("branch7x7dbl_5", (c, 192, 1, 7)),
                 ("branch_pool", (768, 192, 1, 1))]
        convs += [(f"Mixed_{m}.{n}", *s) for n, s in block]
    convs += [("Mixed_7a.branch3x3_1", 768, 192, 1, 1),
              ("Mixed_7a.branch3x3_2", 192, 320, 3, 3),
              ("Mixed_7a.branch7x7x3_1", 768, 192, 1, 1),
              ("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7),
              ("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1),
              ("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3)]
    for m, cin in (("7b", 1280), ("7c", 2048)):
        block = [("branch1x1", (cin, 320, 1, 1)),
                 ("branch3x3_1", (cin, 384, 1, 1)),
                 ("branch3x3_2a", (384, 384, 1, 3)),
                 ("branch3x3_2b", (384, 384, 3, 1)),
                 ("branch3x3dbl_1", (cin, 448, 1, 1)),
                 ("branch3x3dbl_2", (448, 384, 3, 3)),
                 ("branch3x3dbl_3a", (384, 384, 1, 3)),
                 ("branch3x3dbl_3b", (384, 384, 3, 1)),
                 ("branch_pool", (cin, 192, 1, 1))]
        convs += [(f"Mixed_{m}.{n}", *s) for n, s in block]
    shapes = {"fc.weight": (1008, 2048), "fc.bias": (1008,)}
    for name, cin, cout, kh, kw in convs:
        shapes[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{p}"] = (cout,)
    return shapes


def test_a_state_dict_with_the_published_names_and_shapes_loads(tmp_path):
    """The names and shapes of the FID weights file load strictly, and the parameter count is
    torchvision's published 27,161,264 for Inception v3 less its auxiliary head (768 -> 128 1x1,
    128 -> 768 5x5, each with batch norm, and fc 768 -> 1000), plus the 8 extra classes of the 2015
    graph (8 x 2049)."""
    shapes = published_inception()
    aux = 768 * 128 + 2 * 128 + 128 * 768 * 25 + 2 * 768 + 768 * 1000 + 1000
    published = 27_161_264 - aux + 8 * 2049
    assert sum(math.prod(s) for k, s in shapes.items() if "running" not in k) == published
    state = {k: torch.zeros(s) for k, s in shapes.items()}
    state["Mixed_7c.branch_pool.conv.weight"].normal_()
    torch.save(state, tmp_path / "fid.pth")
    net = E.load_inception(str(tmp_path / "fid.pth"))              # strict: every name, every shape
    assert sum(p.numel() for p in net.parameters()) == 27_161_264 - aux + 8 * 2049
    name = "Mixed_7c.branch_pool.conv.weight"
    assert torch.equal(net.state_dict()[name], state[name])
    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(E.Fail, match="not the FID Inception weights"):
        E.load_inception(str(tmp_path / "other.pth"))


def stripes(root, n, seed):
    """8x8 gray images: horizontal stripes in h/, vertical in v/, with noise."""
    rng = np.random.default_rng(seed)
    for cls in ("h", "v"):
        os.makedirs(root / cls, exist_ok=True)
        for i in range(n):
            rows = np.tile((np.arange(8) % 2)[:, None] * 160 + 40, (1, 8))
            im = rows + rng.integers(0, 50, (8, 8))
            im = im if cls == "h" else im.T
            Image.fromarray(im.astype(np.uint8)).save(root / cls / f"{i}.png")


def test_the_classifier_learns_a_tiny_set_and_measures_conditional_accuracy(cli, tmp_path):
    stripes(tmp_path / "train", 40, 0)
    stripes(tmp_path / "samples", 12, 1)
    stripes(tmp_path / "real", 12, 2)
    p = cli("evaluate.py", "--train-classifier", tmp_path / "train", "--out", tmp_path / "clf.pt",
            "--image-size", 8, "--epochs", 15, "--batch-size", 16, "--width", 8)
    assert p.returncode == 0, p.out
    ck = torch.load(tmp_path / "clf.pt", weights_only=True)
    assert ck["class_names"] == ["h", "v"] and ck["held_out_accuracy"] == 1.0
    p = cli("evaluate.py", tmp_path / "samples", "--ref", tmp_path / "real",
            "--classifier", tmp_path / "clf.pt",
            "--kid-size", 10, "--kid-subsets", 5, "--splits", 2, "--json", tmp_path / "r.json")
    assert p.returncode == 0, p.out
    r = json.load(open(tmp_path / "r.json"))
    assert r["accuracy"] == 1.0 and r["n"] == 24 and r["feature_dim"] == 32
    assert r["IS"] > 1.5 and "conditional accuracy" in p.stdout
    assert "FD (classifier features" in p.stdout
    assert set(r["per_class"]) == {"h", "v"} and "intra-class FD (mean of 2)" in p.stdout
    shutil.rmtree(tmp_path / "samples" / "h")                         # only v/: folder 0 is class 1
    args = ("evaluate.py", tmp_path / "samples", "--classifier", tmp_path / "clf.pt", "--splits", 2,
            "--json", tmp_path / "r.json")
    assert cli(*args).returncode == 0 and json.load(open(tmp_path / "r.json"))["accuracy"] == 1.0
    os.rename(tmp_path / "samples" / "v", tmp_path / "samples" / "h")    # vertical ones asked as h
    assert cli(*args).returncode == 0 and json.load(open(tmp_path / "r.json"))["accuracy"] == 0.0
    shutil.copytree(tmp_path / "real" / "h", tmp_path / "copies")       # half the real set, copied
    p = cli("evaluate.py", tmp_path / "copies", "--ref", tmp_path / "real",
            "--classifier", tmp_path / "clf.pt", "--splits", 2, "--json", tmp_path / "r.json")
    r = json.load(open(tmp_path / "r.json"))
    assert p.returncode == 0 and (r["precision"], r["recall"]) == (1.0, 0.5), p.out
    # the real balls that hold a copy: the copied half
    assert r["coverage"] == 0.5 and "per_class" not in r


def test_pairs_give_psnr_and_ssim_of_each_output_against_its_target(cli, tmp_path):
    rng = np.random.default_rng(5)
    for d in ("out", "val"):
        os.makedirs(tmp_path / d)
    b = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(b).save(tmp_path / "out" / "a.png")
    side_by_side = np.concatenate([np.zeros_like(b), b], 1)                        # A|B
    Image.fromarray(side_by_side).save(tmp_path / "val" / "a.png")
    p = cli("evaluate.py", tmp_path / "out", "--pairs", tmp_path / "val",
            "--json", tmp_path / "r.json")
    assert p.returncode == 0, p.out
    assert json.load(open(tmp_path / "r.json"))["SSIM"] == pytest.approx(1.0)
    os.remove(tmp_path / "val" / "a.png")
    p = cli("evaluate.py", tmp_path / "out", "--pairs", tmp_path / "val")
    assert p.returncode == 1 and "has no target named a.*" in p.stderr


def test_bad_input_is_one_line(cli, tmp_path):
    os.makedirs(tmp_path / "empty")
    os.makedirs(tmp_path / "junk")
    for i in range(3):
        (tmp_path / "junk" / f"{i}.png").write_text("not an image")
    net = Classifier(channels=1, num_classes=2, width=4)
    torch.save(dict(model="classifier", config=dict(channels=1, num_classes=2, width=4),
                    class_names=["h", "v"], image_size=8, weights=net.state_dict()),
               tmp_path / "clf.pt")
    p = cli("evaluate.py", tmp_path / "empty", "--classifier", tmp_path / "clf.pt", fresh=True)
    assert p.returncode == 1 and p.stderr.startswith("error: ")
    assert len(p.stderr.strip().splitlines()) == 1
    assert "no images found" in p.stderr
    p = cli("evaluate.py", tmp_path / "junk", "--classifier", tmp_path / "clf.pt")
    assert p.returncode == 1 and "could be read" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = cli("evaluate.py", tmp_path / "empty", "--inception-weights", tmp_path / "none.pth")
    assert p.returncode == 1 and "no Inception weights at" in p.stderr and "pytorch-fid" in p.stderr
    p = cli("evaluate.py", tmp_path / "empty")                      # looked for in the cache folder
    assert p.returncode == 1
    assert f"no Inception weights at {tmp_path / 'cache' / 'genmodels'}" in p.stderr
    p = cli("evaluate.py", tmp_path / "empty", "--classifier", tmp_path / "none.pt")
    assert p.returncode == 1 and "no classifier at" in p.stderr
    p = cli("evaluate.py", "--train-classifier", tmp_path / "junk", "--out", tmp_path / "c.pt")
    assert p.returncode == 1 and "one subfolder per class" in p.stderr


def refusal_setup(tmp_path):
    """Folders of 1, 3 and 12 gray images, a classifier of random weights reading 8x8, a model's
    checkpoint, the lab's files for a course evaluator with 10 outputs, a folder of one class."""
    rng = np.random.default_rng(0)
    for name, n in (("one", 1), ("three", 3), ("twelve", 12), ("single/only", 12),
                    ("pair/a", 1), ("pair/b", 1), ("gap/a", 12), ("gap/b", 12), ("gap/c", 0),
                    ("duo/a", 12), ("duo/b", 12)):
        os.makedirs(tmp_path / name)
        for i in range(n):
            im = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(im).save(tmp_path / name / f"{i}.png")
    config = dict(channels=1, num_classes=2, width=4)
    torch.save(dict(model="classifier", config=config, class_names=["h", "v"], image_size=8,
                    weights=Classifier(**config).state_dict()), tmp_path / "clf.pt")
    torch.save(dict(model="vae", config=dict(image_size=8, channels=1), weights={}),
               tmp_path / "ckpt.pt")
    torch.save({"model": lab.ResNet18(10).state_dict()}, tmp_path / "course.pth")
    (tmp_path / "test.json").write_text(json.dumps([["object 0"], ["object 1", "object 2"]]))
    objects = {f"object {i}": i for i in range(24)}
    (tmp_path / "objects.json").write_text(json.dumps(objects))
    return {"ONE": tmp_path / "one", "THREE": tmp_path / "three", "TWELVE": tmp_path / "twelve",
            "SINGLE": tmp_path / "single", "PAIR": tmp_path / "pair", "GAP": tmp_path / "gap",
            "DUO": tmp_path / "duo", "CLF": tmp_path / "clf.pt",
            "CKPT": tmp_path / "ckpt.pt", "COURSE": tmp_path / "course.pth",
            "TEST": tmp_path / "test.json", "NOWHERE": tmp_path / "no" / "such" / "r.json",
            "FOLDER": tmp_path / "twelve", "OUT": tmp_path / "out.pt"}


CLF = ["--classifier", "CLF"]


@pytest.mark.parametrize("args, message", [
    (["TWELVE", *CLF, "--k", "-1"], "argument --k: must be at least 1 (got -1)"),
    (["TWELVE", *CLF, "--k", "0"], "argument --k: must be at least 1 (got 0)"),
    (["TWELVE", *CLF, "--splits", "0"], "argument --splits: must be at least 1"),
    (["TWELVE", *CLF, "--seed", "-1"], "argument --seed: must be in [0, "),
    (["TWELVE", *CLF, "--kid-subsets", "0"], "argument --kid-subsets: must be at least 1"),
    (["TWELVE", *CLF, "--kid-size", "0"], "argument --kid-size: must be at least 2 (got 0)"),
    (["TWELVE", *CLF, "--kid-size", "1"], "argument --kid-size: must be at least 2 (got 1)"),
    (["TWELVE", *CLF, "--k", "x"], "argument --k: invalid int value: 'x'"),
    (["TWELVE", *CLF, "--nope"], "unrecognized arguments: --nope"),
    ([], "give SAMPLES (a folder of images) or --train-classifier DIR"),
    (["--train-classifier", "SINGLE", "--epochs", "0"], "argument --epochs: must be at least 1"),
    (["--train-classifier", "SINGLE", "--batch-size", "0"], "argument --batch-size: must be at"),
    (["--train-classifier", "SINGLE", "--lr", "nan"], "argument --lr: must be above 0 (got nan)"),
    (["--train-classifier", "SINGLE", "--lr", "-1"], "argument --lr: must be above 0 (got -1)"),
    (["--train-classifier", "SINGLE", "--width", "0"], "argument --width: must be at least 1"),
    (["--train-classifier", "SINGLE", "--image-size", "3"],
     "argument --image-size: must be at least 4 (got 3)"),
    (["THREE", *CLF], "IS with --splits 10 needs at least 10 images (3 here): give a smaller"),
    (["ONE", *CLF, "--splits", "1", "--ref", "TWELVE"],
     "FD and KID need at least 2 images in each folder (1 in"),
    (["THREE", *CLF, "--splits", "1", "--ref", "TWELVE"],
     "precision/recall with k = 3 needs more than 3 images in each folder"),
    (["TWELVE", "--conditions", "TEST", "--classifier", "COURSE"],
     "--classifier scores 10 objects, but"),
    # each was ignored beside --conditions, --ref beside --pairs
    (["TWELVE", "--conditions", "TEST", "--classifier", "COURSE", "--ref", "TWELVE"],
     "--conditions and --ref ask for two evaluations: run evaluate.py once for each"),
    (["--train-classifier", "TWELVE", "--ref", "TWELVE"],
     "--train-classifier and --ref ask for two evaluations"),
    (["TWELVE", "--train-classifier", "TWELVE"], "--train-classifier and SAMPLES ask for two"),
    # a flag the evaluation asked for does not read
    (["--train-classifier", "TWELVE", "--json", "NOWHERE"],
     "--json has no effect with --train-classifier: drop it"),
    (["TWELVE", *CLF, "--k", "5"], "--k has no effect with SAMPLES alone: drop it"),
    (["TWELVE", *CLF, "--epochs", "3"], "--epochs has no effect with SAMPLES alone"),
    (["TWELVE", "--pairs", "TWELVE", "--kid-size", "5"], "--kid-size has no effect with --pairs"),
    (["TWELVE", "--conditions", "TEST", "--classifier", "COURSE", "--splits", "2"],
     "--splits has no effect with --conditions"),
    (["--train-classifier", "TWELVE", "--objects", "TEST"],
     "--objects names the objects of --labels: give --labels too"),
    (["TWELVE", *CLF, "--kid-s", "5"], "unrecognized arguments: --kid-s"),
    (["TWELVE", "--conditions", "TEST", "--classifier", "COURSE", "--pairs", "TWELVE"],
     "--conditions and --pairs ask for two evaluations"),
    (["TWELVE", "--pairs", "TWELVE", "--ref", "TWELVE"], "--pairs and --ref ask for two"),
    (["TWELVE", *CLF, "--json", "NOWHERE"], "cannot write --json"),
    (["TWELVE", *CLF, "--json", "FOLDER"], "is a folder: name a file"),
    (["--train-classifier", "TWELVE", "--out", "NOWHERE"], "cannot write --out"),
    (["--train-classifier", "TWELVE", "--out", "CKPT"],
     "exists and is not a classifier of evaluate.py: choose another --out"),
    (["--train-classifier", "SINGLE", "--image-size", "8", "--out", "OUT"],
     "has one class (only): a classifier needs at least 2"),
    # each class's one image, the first held out: nothing of class a to learn
    (["--train-classifier", "PAIR", "--image-size", "8", "--out", "OUT"],
     "no image of the class a to train on"),
    (["--train-classifier", "GAP", "--image-size", "8", "--out", "OUT"],
     "no image of the class c to train on"),
    (["--train-classifier", "DUO", "--image-size", "8", "--width", "1000000000", "--out", "OUT"],
     "choose a smaller --batch-size"),
])
def test_refusals_are_one_line_before_the_work(cli, tmp_path, args, message):
    """Each bad input (issue 30) is one line naming the flag, exit 1, and nothing written: no
    NaN figure, no traceback, no usage block, no checkpoint overwritten."""
    places = refusal_setup(tmp_path)
    before = open(places["CKPT"], "rb").read()
    p = cli("evaluate.py", *[places.get(a, a) for a in args])
    assert p.returncode == 1 and message in p.stderr, p.out
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("error: "), p.out
    assert "epoch" not in p.stdout and not os.path.exists(places["OUT"])
    assert open(places["CKPT"], "rb").read() == before

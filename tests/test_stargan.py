"""stargan.py: the parameter counts of the paper's networks, the shapes, c as constant maps, which
label each domain term uses (the real one on reals, the target on fakes, the original for the way
back), the Wasserstein terms and the gradient penalty, which step reaches which network, multi-hot
attributes, sampling, and the command line (train.py on class folders, sample.py to every domain,
the bad inputs)."""
import math
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
import stargan
from stargan import Discriminator, Generator, ResidualBlock, StarGAN


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one thread is faster, and on a busy CPU far faster, than several."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def count(net):
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_of_the_papers_configuration():
    """128x128 RGB, 5 attributes (CelebA's), 64 channels, 6 residual blocks, D 6 layers deep
    (appendix, Tables 4 and 5), counted layer by layer. G's convs have no bias; each InstanceNorm
    has a scale and a shift per channel. D's trunk convs have biases, its two heads none."""
    C, K, ngf, ndf = 3, 5, 64, 64

    def IN(c):                                                  # affine: gamma and beta
        return 2 * c

    g = (C + K) * ngf * 7 * 7 + IN(ngf)                         # conv 7x7 on [x, c maps]
    g += ngf * 2 * ngf * 4 * 4 + IN(2 * ngf)                    # down: 4x4 stride 2, 128
    g += 2 * ngf * 4 * ngf * 4 * 4 + IN(4 * ngf)                # down: 4x4 stride 2, 256
    g += 6 * 2 * (4 * ngf * 4 * ngf * 3 * 3 + IN(4 * ngf))     # 6 blocks of two 3x3 convs
    g += 4 * ngf * 2 * ngf * 4 * 4 + IN(2 * ngf)                # up: 4x4 transposed, 128
    g += 2 * ngf * ngf * 4 * 4 + IN(ngf)                        # up: 4x4 transposed, 64
    g += ngf * C * 7 * 7                                        # conv 7x7 to the image, Tanh
    widths = [C] + [ndf << i for i in range(6)]                 # 3, 64, 128, ..., 2048
    d = sum(a * b * 4 * 4 + b for a, b in zip(widths, widths[1:]))   # 6 convs 4x4 stride 2
    d += 2048 * 1 * 3 * 3                                       # D_src: 3x3 to one logit a patch
    d += 2048 * K * 2 * 2                                       # D_cls: 128 / 2^6 = 2, all of it
    m = StarGAN(128, 3, 5)
    assert (count(m.G), count(m.D)) == (g, d) == (8_430_528, 44_762_048)


@pytest.mark.parametrize("size, P", [(128, 2), (32, 2), (16, 2), (8, 2)])
def test_shapes(size, P):
    m = StarGAN(size, 1, 3, ngf=4, ndf=4, n_blocks=1)
    x = torch.rand(2, 1, size, size) * 2 - 1
    out = m.G(x, torch.tensor([0, 2]))
    assert out.shape == x.shape and out.abs().max() <= 1
    src, cls = m.D(x)
    assert src.shape == (2, 1, P, P) and cls.shape == (2, 3)
    assert StarGAN(32, 1, 3, n_layers=2).D(torch.zeros(1, 1, 32, 32))[0].shape == (1, 1, 8, 8)


def test_g_spans_the_data_range():
    """G's Tanh: outputs reach near -1 and 1 when its last conv is large."""
    g = Generator(1, 2, ngf=4, n_blocks=1)
    torch.nn.init.normal_(g.net[-2].weight, 0, 10.0)
    out = g(torch.rand(4, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 0, 1]))
    assert out.min() < -0.99 and out.max() > 0.99 and out.abs().max() <= 1


def test_c_is_given_as_constant_maps_beside_x():
    """G's first conv sees (C + K) channels: x, then c's one-hot (or multi-hot) value as a
    constant map per domain."""
    g = Generator(2, 3, ngf=4, n_blocks=1)
    seen = []
    g.net[0].register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    x = torch.rand(2, 2, 8, 8)
    g(x, torch.tensor([2, 0]))
    g(x, torch.tensor([[1.0, 0, 1], [0, 1, 0]]))
    for h, c in zip(seen, ([[0, 0, 1], [1, 0, 0]], [[1, 0, 1], [0, 1, 0]])):
        assert h.shape == (2, 5, 8, 8) and torch.equal(h[:, :2], x)
        assert torch.equal(h[:, 2:], torch.tensor(c).float()[:, :, None, None].expand(-1, -1, 8, 8))


def test_a_residual_block_learns_a_change_to_x():
    block = ResidualBlock(4)
    for conv in (block.f[0], block.f[3]):
        torch.nn.init.zeros_(conv.weight)
    x = torch.randn(2, 4, 8, 8)
    assert torch.allclose(block(x), x)


def tiny(K=4, **kw):
    torch.manual_seed(0)
    return StarGAN(8, 1, K, ngf=4, ndf=4, n_blocks=1, **kw)


def batch(K=4, B=8):
    torch.manual_seed(1)
    return torch.rand(B, 1, 8, 8) * 2 - 1, torch.arange(B) % K


def test_targets_are_the_batchs_labels_in_a_random_order():
    """Step 5: c is a permutation of y (the same domains, moved), and G(x, c) is what d_loss
    keeps for g_loss."""
    m = tiny()
    x, y = batch()
    m.d_loss(x, y)
    assert torch.equal(m.c.sort().values, y.sort().values) and (m.c != y).any()
    assert torch.allclose(m.fake, m.G(x, m.c))


def test_d_classifies_reals_by_their_real_label():
    """Eq. 2: D's cls term is -log D_cls(c' | x) with c' = y, the label x came with, not the
    target c drawn for G."""
    m = tiny(lambda_cls=2.0)
    x, y = batch()
    terms = m.d_loss(x, y)
    logits = m.D(x)[1]
    assert torch.allclose(terms["cls"], 2.0 * F.cross_entropy(logits, y))
    assert not torch.allclose(terms["cls"], 2.0 * F.cross_entropy(logits, m.c))


def test_g_is_judged_on_the_target_label_of_its_fakes():
    """Eq. 3: G's cls term is -log D_cls(c | G(x, c)), the target c it was asked for."""
    m = tiny(lambda_cls=2.0)
    x, y = batch()
    m.d_loss(x, y)
    terms = m.g_loss(x, y)
    logits = m.D(m.fake)[1]
    assert torch.allclose(terms["cls"], 2.0 * F.cross_entropy(logits, m.c))
    assert not torch.allclose(terms["cls"], 2.0 * F.cross_entropy(logits, y))


def test_reconstruction_goes_back_to_the_original_label():
    """Eq. 4: lambda_rec ||x - G(G(x, c), c')||_1 with c' = y, a mean over pixels; G is a
    stand-in that scales by its label + 1, so each label's way back is a different number."""
    m = tiny(lambda_rec=3.0)
    x, y = batch()
    m.G.forward = lambda v, c: v * (c.float().view(-1, 1, 1, 1) + 1)
    m.d_loss(x, y)
    rec = m.g_loss(x, y)["rec"]
    assert torch.allclose(rec, 3.0 * (x - m.G(m.fake, y)).abs().mean())    # x (c + 1) (c' + 1)
    assert not torch.allclose(rec, 3.0 * (x - m.G(m.fake, m.c)).abs().mean())


def test_wasserstein_terms_and_their_signs():
    """Sec. 4 (WGAN-GP): D minimises -D_src(x) + D_src(G(x, c)) (+ the penalty), G minimises
    -D_src(G(x, c)); each a mean over patches and images. A stand-in D_src: the mean pixel."""
    m = tiny()
    x, y = batch()
    trunk = m.D.forward
    m.D.forward = lambda v: (v.mean((1, 2, 3), keepdim=True), trunk(v)[1])
    d = m.d_loss(x, y)
    g = m.g_loss(x, y)
    assert torch.allclose(d["real"], -x.mean()) and torch.allclose(d["fake"], m.fake.mean())
    assert torch.allclose(g["adv"], -m.fake.mean())


def test_gradient_penalty_of_a_linear_critic():
    """For D_src(v) = w . v, the gradient is w everywhere: the penalty is (||w||_2 - 1)^2."""
    w = torch.randn(1, 2, 4, 4)
    critic = lambda v: (v * w).sum((1, 2, 3))                   # noqa: E731
    x = torch.randn(5, 2, 4, 4)
    gp = stargan.gradient_penalty(critic, x, torch.randn_like(x))
    assert torch.allclose(gp, (w.norm() - 1) ** 2)


def test_gradient_penalty_points_lie_between_real_and_fake():
    seen = []
    critic = lambda v: seen.append(v.detach()) or v.sum((1, 2, 3))   # noqa: E731
    x = torch.ones(64, 1, 2, 2)
    stargan.gradient_penalty(critic, x, 3 * x)
    x_hat = seen[0]                                             # u x + (1 - u) G = 3 - 2 u
    assert ((1 < x_hat) & (x_hat < 3)).all()                    # strictly between x and G
    assert (x_hat == x_hat[:, :, :1, :1]).all()                 # one u per image
    assert 1.6 < x_hat.mean() < 2.4                             # u ~ U(0, 1): mean 2


def test_d_loss_penalises_d_src_with_lambda_gp():
    """The gp term is gp_lambda times the penalty of D_src, the real/fake head (not D_cls)."""
    m = tiny(gp_lambda=3.0)
    x, y = batch()
    m.D_src = lambda v: (2 * v).sum((1, 2, 3))                  # gradient norm 2 * 8: (16 - 1)^2
    assert torch.allclose(m.d_loss(x, y)["gp"], torch.tensor(3.0 * 15**2))


def test_each_step_reaches_its_own_network():
    """D's terms leave G without a gradient (G(x, c) is detached for D); G's reach all of G."""
    m = tiny()
    x, y = batch()
    sum(m.d_loss(x, y).values()).backward()
    assert all(p.grad is None for p in m.G.parameters())
    assert all(p.grad is not None for p in m.D.parameters())
    m.zero_grad()
    sum(m.g_loss(x, y).values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.G.parameters())
    d_opt, g_opt = m.configure_optimizers()
    assert {id(p) for p in d_opt.param_groups[0]["params"]} == {id(p) for p in m.D.parameters()}
    assert {id(p) for p in g_opt.param_groups[0]["params"]} == {id(p) for p in m.G.parameters()}
    assert (d_opt.defaults["lr"], d_opt.defaults["betas"], m.n_critic) == (1e-4, (0.5, 0.999), 5)


def test_the_penalty_trains_d_and_the_reconstruction_reaches_g_through_both_passes():
    """The penalty's gradient is a function of D's weights (create_graph): the gp term alone
    reaches every weight that D_src's real term reaches (not the biases: grad_x of a piecewise
    linear D does not depend on them). L_rec = ||x - G(G(x, c), c')||_1 trains
    G through its first pass too: its gradient reaches G(x, c)."""
    m = tiny()
    x, y = batch()
    d = m.d_loss(x, y)
    params = [p for p in m.D.parameters() if p.dim() > 1]
    by_real = torch.autograd.grad(d["real"], params, retain_graph=True, allow_unused=True)
    by_gp = torch.autograd.grad(d["gp"], params, allow_unused=True)
    src = [i for i, g in enumerate(by_real) if g is not None and g.abs().sum() > 0]
    assert src and all(by_gp[i] is not None and by_gp[i].abs().sum() > 0 for i in src)
    grad, = torch.autograd.grad(m.g_loss(x, y)["rec"], m.fake, allow_unused=True)
    assert grad is not None and grad.abs().sum() > 0


def test_domain_loss_for_classes_and_for_attributes():
    """With zero logits, -log D_cls is log K for one of K classes, and K log 2 for K attributes
    (a binary cross-entropy each, summed), whatever the labels; then one confident logit."""
    zeros = torch.zeros(6, 5)
    assert math.isclose(stargan.domain_loss(zeros, torch.arange(6) % 5), math.log(5), rel_tol=1e-6)
    attributes = torch.randint(0, 2, (6, 5)).float()
    assert math.isclose(stargan.domain_loss(zeros, attributes), 5 * math.log(2), rel_tol=1e-6)
    logits = zeros.clone()
    logits[:, 0] = 50.0                                         # sure that attribute 0 is on
    on = torch.zeros(6, 5)
    on[:, 0] = 1
    assert math.isclose(stargan.domain_loss(logits, on), 4 * math.log(2), rel_tol=1e-5)


def test_multi_hot_attributes_train_and_keep_their_targets():
    m = tiny()
    x, _ = batch()
    y = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]]).repeat(4, 1)
    terms = {**m.d_loss(x, y), **m.g_loss(x, y)}
    assert all(torch.isfinite(v) for v in terms.values())
    assert m.c.shape == y.shape and (m.c.sum(1).sort().values == y.sum(1).sort().values).all()


def test_sample_translates_the_kept_images_to_each_domain():
    """sample(n, c): input i // K of x_ref (the first images of the latest batch D saw) to domain
    c_i, so a grid K wide shows each kept image in every domain."""
    m = tiny(K=3)
    x, y = batch(K=3)
    m.d_loss(x, y)
    assert torch.equal(m.x_ref, x)
    c = torch.arange(6) % 3
    out = m.sample(6, c)
    assert torch.allclose(out, m.G(x[[0, 0, 0, 1, 1, 1]], c))
    with pytest.raises(ValueError):
        m.sample(2, None)


def test_refuses_fewer_than_two_domains_and_odd_sizes():
    for bad in (dict(num_classes=0), dict(num_classes=1), dict(image_size=24),
                dict(image_size=16, n_layers=5)):
        with pytest.raises(ValueError):
            StarGAN(**{"image_size": 16, "channels": 3, "num_classes": 3, **bad})


def write_classes(root, n=4, size=8):
    """Class folders red/ and blue/: a plain square of that colour on black, n each."""
    for name, rgb in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (root / name).mkdir(parents=True)
        for i in range(n):
            im = np.zeros((size, size, 3), np.uint8)
            im[2:6, 2 + i % 2:6 + i % 2] = rgb
            Image.fromarray(im).save(root / name / f"{i}.png")


SMALL = ["--image-size", 8, "--ngf", 4, "--ndf", 4, "--n-blocks", 1, "--batch-size", 4,
         "--log-every", 5, "--grid", 4]


def test_command_line(cli, tmp_path):
    """train.py on two class folders (5 steps: one G step at n_critic 5), then sample.py: a grid
    of input | red | blue, and class folders of the translations."""
    write_classes(tmp_path / "data")
    out = tmp_path / "run"
    r = cli("train.py", "stargan", "--data", tmp_path / "data", "--classes", "--steps", 5,
            "--out", out, *SMALL)
    assert r.returncode == 0, r.out
    assert "2 classes" in r.out and "G.rec" in r.out and "D.gp" in r.out and "D.cls" in r.out
    r = cli("sample.py", out / "ckpt.pt", "--input", tmp_path / "data", "--out", tmp_path / "g.png")
    assert r.returncode == 0 and "input | blue | red" in r.out, r.out
    assert Image.open(tmp_path / "g.png").size == (3 * 10 + 2, 8 * 10 + 2)   # 8 rows, 3 columns
    r = cli("sample.py", out / "ckpt.pt", "--input", tmp_path / "data",
            "--out", str(tmp_path / "t") + "/")
    assert r.returncode == 0, r.out
    for domain in ("red", "blue"):
        written = sorted(p.name for p in (tmp_path / "t" / domain).glob("*.png"))
        assert written == sorted(f"{c}_{i}.png" for c in ("red", "blue") for i in range(4))
    r = cli("sample.py", out / "ckpt.pt", "--out", tmp_path / "none.png")
    assert r.returncode == 1 and "--input" in r.out


def test_bad_input_is_one_line(cli, tmp_path):
    """No labels, or a single domain: one line and exit 1, no traceback."""
    write_classes(tmp_path / "data")
    r = cli("train.py", "stargan", "--data", tmp_path / "data", "--steps", 1,
            "--out", tmp_path / "a", *SMALL)
    assert r.returncode == 1 and "--classes" in r.stderr and "Traceback" not in r.out, r.out
    assert len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "one").mkdir()
    (tmp_path / "data" / "red").rename(tmp_path / "one" / "red")
    r = cli("train.py", "stargan", "--data", tmp_path / "one", "--classes", "--steps", 1,
            "--out", tmp_path / "b", *SMALL)
    assert r.returncode == 1 and "at least 2" in r.out, r.out

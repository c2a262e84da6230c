"""gan.py: the minimax value, confident and wrong discriminators, which step's gradient reaches G,
the optimisers' parameters, the prior of z, the Wasserstein critic's value, sign and clipping, the
gradient penalty's value, points and gradient, the lab's soft and flipped labels and dropout, mode
coverage on 8 Gaussians, the command line."""
import math
import pytest
import torch
import gan
from conftest import adversarial_steps
from gan import GAN


def bce(logit, target):
    """BCE of one logit against a target, in closed form: softplus(logit) - target * logit."""
    return math.log1p(math.exp(logit)) - target * logit


def test_minimax_value_at_d_one_half():
    """With D(x) = 1/2 everywhere, -log D(x) - log(1 - D(G(z))) = 2 log 2."""
    m = GAN(8, 1)
    m.logits = lambda x, y=None: torch.zeros(x.shape[0], requires_grad=True)   # logit 0: D = 1/2
    terms = m.d_loss(torch.rand(16, 1, 8, 8) * 2 - 1)
    assert (terms["real"] + terms["fake"]).item() == pytest.approx(2 * math.log(2))
    assert terms["D(x)"].item() == terms["D(G(z))"].item() == 0.5


def known_game(m, logit_of_real):
    """Real x = +1 and fakes G(z) = -1; D's logit is logit_of_real * mean(x): +/- logit_of_real."""
    m.generate = lambda z, y=None: -torch.ones(len(z), *m.shape)
    m.logits = lambda v, y=None: logit_of_real * v.flatten(1).mean(1)


@pytest.mark.parametrize("logit_of_real", [5.0, -5.0])          # D confidently right, then wrong
def test_confident_discriminator(logit_of_real):
    """Real logits +5 and fake -5: D's loss is near 0 and G's large (5.007 = -log sigmoid(-5));
    the reverse when D is confidently wrong."""
    m = GAN(4, 1)
    known_game(m, logit_of_real)
    d, g = m.d_loss(torch.ones(8, 1, 4, 4)), m.g_loss(None)
    assert d["real"].item() == pytest.approx(bce(logit_of_real, 1.0), rel=1e-4)   # -log D(x)
    assert d["fake"].item() == pytest.approx(bce(-logit_of_real, 0.0), rel=1e-4)  # -log(1 - D)
    assert g["gan"].item() == pytest.approx(bce(-logit_of_real, 1.0), rel=1e-4)   # -log D(G(z))
    assert (d["real"] + d["fake"] < 0.02) == (logit_of_real > 0) == (g["gan"] > 5)


def g_loss_and_its_gradient(m, logits):
    """G's loss for D's logits l on the fakes, and d loss / d l_i times the batch size: the
    gradient one fake gets."""
    l = torch.tensor(logits, requires_grad=True)
    m.fake, m.y = torch.zeros(len(logits), 1), None
    m.logits = lambda v, y=None: l
    loss = m.g_loss(None)["gan"]
    grad, = torch.autograd.grad(loss, l)
    return loss.item(), grad * len(logits)


@pytest.mark.parametrize("g_loss", ["saturating", "non-saturating", None])   # None: the default
def test_saturating_g_loss_vanishes_at_a_confident_fake(g_loss):
    """Saturating, Eq. 1: E[log(1 - sigmoid(l))], d/dl = -sigmoid(l): near 0 at a fake that D
    rejects with confidence (l = -10). Non-saturating, -E[log sigmoid(l)], d/dl = -sigmoid(-l):
    near -1 there. Both gradients are negative (a higher D(G(z)) lowers either loss) and equal,
    -1/2, at D = 1/2. The default is the non-saturating loss."""
    m = GAN(1, 1) if g_loss is None else GAN(1, 1, g_loss=g_loss)
    logits = [-10.0, -3.0, 0.0, 2.0]
    saturating = g_loss == "saturating"
    value, grad = g_loss_and_its_gradient(m, logits)
    sigmoid = lambda a: 1 / (1 + math.exp(-a))
    if saturating:
        expected = sum(math.log(1 - sigmoid(l)) for l in logits) / 4           # E[log(1 - D)]
        slopes = [-sigmoid(l) for l in logits]
    else:
        expected = sum(-math.log(sigmoid(l)) for l in logits) / 4              # -E[log D]
        slopes = [-sigmoid(-l) for l in logits]
    assert value == pytest.approx(expected, rel=1e-5)
    assert grad.tolist() == pytest.approx(slopes, rel=1e-4)
    assert (grad < 0).all() and grad[2].item() == pytest.approx(-0.5)          # D = 1/2
    assert (abs(grad[0].item()) < 1e-4) == saturating                          # l = -10
    assert (abs(grad[0].item()) > 0.99) == (not saturating)


@pytest.mark.parametrize("g_loss", ["saturating", "non-saturating"])
def test_both_g_losses_share_the_minimax_fixed_point(g_loss):
    """p_data = N(0, 1), p_g = N(mu, 1) (G(z) = z + mu), D the optimal D* = p_data / (p_data +
    p_g), whose logit is log p_data - log p_g = -mu x + mu^2 / 2. Each G loss's gradient in mu has
    mu's sign, so a G step moves p_g towards p_data; at mu = 0, p_g = p_data, D* = 1/2 and the
    gradient is 0: the game's fixed point, under either loss."""
    torch.manual_seed(0)
    for mu0 in [-1.0, 0.0, 0.5, 2.0]:
        m = GAN(1, 1, z_dim=1, g_loss=g_loss)
        mu = torch.tensor(mu0, requires_grad=True)
        m.generate = lambda z, y=None: z + mu                               # G(z) = z + mu
        m.logits = lambda v, y=None: (-mu0 * v + mu0**2 / 2).flatten()      # D*'s logit
        terms = m.d_loss(torch.randn(4096, 1))
        grad, = torch.autograd.grad(m.g_loss(None)["gan"], mu)
        if mu0 == 0:
            assert grad.item() == 0 and terms["D(G(z))"].item() == 0.5
        else:
            assert grad.item() * mu0 > 0.05 * mu0**2, (mu0, grad)


def test_the_g_loss_option(cli):
    """--g-loss is a choice of the BCE game: refused with the WGAN critic, and checked by name."""
    assert not GAN(1, 1).saturating and GAN(1, 1, g_loss="saturating").saturating
    with pytest.raises(ValueError, match="saturating or non-saturating"):
        GAN(1, 1, g_loss="minimax")
    r = cli("train.py", "gan", "--loss", "wgan", "--g-loss", "saturating")
    assert r.returncode == 1 and "--g-loss has no effect unless --loss is bce" in r.stderr, r.out
    assert len(r.stderr.strip().splitlines()) == 1


def test_soft_and_flipped_labels_reach_the_loss():
    """With the stabilisers on, D's BCE terms measure its mean targets: soft and flipped with
    p = 0.2, the real ones average 0.8 * 0.85 + 0.2 * 0.15 = 0.71 and the fake ones 0.29."""
    torch.manual_seed(0)
    m = GAN(1, 1, soft_labels=True, flip_labels=0.2)
    known_game(m, 5.0)
    d = m.d_loss(torch.ones(40_000, 1, 1, 1))
    mean_real_target = (bce(5.0, 0.0) - d["real"].item()) / 5.0   # BCE(l, t) = softplus(l) - t l
    mean_fake_target = (d["fake"].item() - bce(-5.0, 0.0)) / 5.0
    assert mean_real_target == pytest.approx(0.71, abs=0.01)
    assert mean_fake_target == pytest.approx(0.29, abs=0.01)
    with pytest.raises(ValueError, match="bce loss"):
        GAN(4, 1, loss="wgan", soft_labels=True)


def test_soft_and_flipped_label_distributions():
    """D's targets, gan.py's for every GAN file (dcgan.py and pix2pix.py import them), over
    100,000 draws: exactly 1 and 0 by default; soft, U(0.7, 1.0) and
    U(0.0, 0.3) (mean a + 0.15, variance 0.3^2 / 12); flipped, the other side's with probability
    p."""
    torch.manual_seed(0)
    n = 100_000
    real, fake = (t.flatten() for t in gan.d_targets(n, "cpu"))
    assert real.eq(1).all() and fake.eq(0).all()
    real, fake = (t.flatten() for t in gan.d_targets(n, "cpu", soft=True))
    for t, a in [(real, 0.7), (fake, 0.0)]:
        assert a <= t.min() and t.max() <= a + 0.3
        assert t.mean().item() == pytest.approx(a + 0.15, abs=0.002)
        assert t.var().item() == pytest.approx(0.3 ** 2 / 12, rel=0.03)
    real, fake = (t.flatten() for t in gan.d_targets(n, "cpu", soft=True, flip=0.2))
    assert (real < 0.5).float().mean().item() == pytest.approx(0.2, abs=0.006)
    assert (fake > 0.5).float().mean().item() == pytest.approx(0.2, abs=0.006)
    assert real[real < 0.5].max() <= 0.3                  # a flipped target is the other side's
    assert fake[fake > 0.5].min() >= 0.7


def ids(params):
    return {id(p) for p in params}


@pytest.mark.parametrize("loss", ["bce", "wgan-gp"])
def test_gradients_reach_g_only_in_its_own_step(loss):
    """D's step trains D alone: its loss leaves G without a gradient (the fakes are detached, the
    penalty's points too). G's step, on the fakes d_loss kept with their graph, reaches all of G."""
    torch.manual_seed(0)
    m = GAN(4, 1, hidden=8, loss=loss)
    sum(m.d_loss(torch.rand(8, 1, 4, 4) * 2 - 1).values()).backward()
    assert all(p.grad is None for p in m.G.parameters())
    assert all(p.grad is not None for p in m.D.parameters())   # WGAN's last bias: exactly 0
    sum(m.g_loss(None).values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.G.parameters())


@pytest.mark.parametrize("loss", ["bce", "wgan"])
def test_each_optimizer_steps_its_own_network(loss):
    """D's optimizer steps D's parameters and G's G's, Adam and WGAN's RMSprop alike."""
    m = GAN(4, 1, hidden=8, loss=loss)
    d_opt, g_opt = m.configure_optimizers()
    assert ids(p for g in d_opt.param_groups for p in g["params"]) == ids(m.D.parameters())
    assert ids(p for g in g_opt.param_groups for p in g["params"]) == ids(m.G.parameters())


def test_dropout_is_in_d_only():
    """The lab's dropout regularises D: in training mode D's score of one x varies from call to
    call, G(z) does not."""
    torch.manual_seed(0)
    m = GAN(4, 1, hidden=16, d_dropout=0.5).train()
    z, x = torch.randn(4, 100), torch.rand(4, 1, 4, 4)
    assert torch.equal(m.generate(z), m.generate(z))
    assert not torch.equal(m.logits(x), m.logits(x))


def test_g_draws_z_from_the_prior_in_training_and_sampling():
    """z ~ N(0, I) in d_loss and in sample alike: mean 0, std 1, N's tails P(|z| > 2) = 0.0455."""
    torch.manual_seed(0)
    m = GAN(1, 2, z_dim=4, hidden=8)
    seen = []
    generate = m.generate
    m.generate = lambda z, y=None: seen.append(z) or generate(z, y)
    m.d_loss(torch.zeros(50_000, 2))
    m.sample(50_000)
    assert len(seen) == 2
    for z in seen:
        assert z.shape == (50_000, 4)
        assert z.mean().abs() < 0.01 and z.std().item() == pytest.approx(1.0, rel=0.01)
        assert (z.abs() > 2).float().mean().item() == pytest.approx(0.0455, abs=0.003)


@pytest.mark.parametrize("loss", ["wgan", "wgan-gp"])
def test_wasserstein_critic_value_and_sign(loss):
    """A linear critic f(x) = w . x with ||w|| = 2, real data where f = 6 and fakes where f = -2:
    the critic's loss is E[f(G(z))] - E[f(x)] = -8 (it gains by scoring data above fakes), the
    penalty lambda (2 - 1)^2, G's loss -E[f(G(z))] = 2."""
    m = GAN(4, 1, loss=loss, gp_lambda=3.0)
    w = torch.full((16,), 0.5)
    m.logits = lambda v, y=None: v.flatten(1) @ w
    m.generate = lambda z, y=None: torch.full((len(z), 1, 4, 4), -0.25)
    d = m.d_loss(torch.full((8, 1, 4, 4), 0.75))
    assert d["real"].item() == pytest.approx(-6) and d["fake"].item() == pytest.approx(-2)
    assert (loss == "wgan-gp") == ("gp" in d)
    assert d.get("gp", torch.tensor(3.0)).item() == pytest.approx(3.0)
    assert m.g_loss(None)["wgan"].item() == pytest.approx(2)


def test_wgan_clips_the_critic_after_each_of_its_steps():
    """Algorithm 1 of Arjovsky et al.: RMSprop at 5e-5, 5 critic steps per G step, and after every
    critic step each of D's weights in [-c, c]. A large learning rate pushes them out; the clip
    brings them back. G's weights are not clipped."""
    default = GAN(4, 1, loss="wgan")
    assert default.n_critic == 5 and default.lr == 5e-5 and GAN(4, 1).n_critic == 1
    torch.manual_seed(0)
    m = GAN(4, 1, hidden=8, loss="wgan", clip=0.02, lr=0.01)
    d_opt, g_opt = m.configure_optimizers()
    assert isinstance(d_opt, torch.optim.RMSprop) and isinstance(g_opt, torch.optim.RMSprop)
    x = torch.rand(16, 1, 4, 4) * 2 - 1
    for _ in range(3):
        d_opt.zero_grad()
        sum(m.d_loss(x).values()).backward()
        d_opt.step()
        w = torch.cat([p.flatten() for p in m.D.parameters()])
        assert w.abs().max() <= 0.02 and (w.abs() == 0.02).sum() > len(w) / 4   # many at the bound
        g_opt.zero_grad()
        sum(m.g_loss(x).values()).backward()
        g_opt.step()
    assert max(p.abs().max() for p in m.G.parameters()) > 0.1


def test_gradient_penalty_vanishes_for_a_1_lipschitz_critic():
    torch.manual_seed(0)
    x, fake = torch.randn(64, 3, 4, 4), torch.randn(64, 3, 4, 4)
    w = torch.randn(48)
    for norm, expected in [(1.0, 0.0), (3.0, 4.0), (0.5, 0.25)]:   # (||w|| - 1)^2 for f(x) = w . x
        critic = lambda v, w=w * norm / w.norm(): v.flatten(1) @ w
        assert gan.gradient_penalty(critic, x, fake).item() == pytest.approx(expected, abs=1e-5)


def test_penalty_points_lie_on_the_lines_between_real_and_fake():
    """x_hat = u x + (1 - u) G(z), one u ~ U(0, 1) per image: all of x_hat_i lies at one fraction
    u_i of the way from G(z)_i to x_i, and the u_i spread over (0, 1) (mean 1/2, variance 1/12)."""
    torch.manual_seed(0)
    x, fake = torch.randn(20_000, 3, 4, 4), torch.randn(20_000, 3, 4, 4)
    seen = []
    gan.gradient_penalty(lambda v: seen.append(v.detach()) or v.flatten(1).sum(1), x, fake)
    d = (x - fake).flatten(1)
    along = (seen[0] - fake).flatten(1)
    u = (along * d).sum(1) / (d * d).sum(1)                     # least squares: along = u d
    assert (along - u[:, None] * d).abs().max() < 1e-4          # on the line, all pixels alike
    assert 0 < u.min() and u.max() < 1
    assert u.mean().item() == pytest.approx(0.5, abs=0.01)
    assert u.var().item() == pytest.approx(1 / 12, rel=0.03)


def test_penalty_trains_the_critic():
    """The penalty is differentiated through the critic's gradient (create_graph): for f(x) = w . x
    it is (||w|| - 1)^2, and its gradient 2 (||w|| - 1) w / ||w||: for w = (3, 4), 1.6 w."""
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    penalty = gan.gradient_penalty(lambda v: v @ w, torch.randn(8, 2), torch.randn(8, 2))
    assert penalty.item() == pytest.approx(16.0)
    penalty.backward()
    assert torch.allclose(w.grad, 1.6 * w.detach())


def ring(n, modes=8, radius=0.8, std=0.02):
    k = torch.randint(0, modes, (n,))
    angle = 2 * math.pi * k / modes
    return torch.stack([angle.cos(), angle.sin()], 1) * radius + std * torch.randn(n, 2)


def test_covers_the_modes_of_eight_gaussians():
    """The classic mode-collapse check: samples near at least 6 of 8 modes, many of them close."""
    torch.manual_seed(0)
    m = GAN(1, 2, z_dim=8, hidden=64, lr=1e-3)                    # 2-D points: 2 channels, size 1
    adversarial_steps(m, lambda step: (ring(128), None), steps=700)
    x = m.sample(2000).view(-1, 2)
    angles = torch.arange(8) * math.pi / 4
    centres = torch.stack([torch.tensor([math.cos(a), math.sin(a)]) * 0.8 for a in angles])
    dist, nearest = torch.cdist(x, centres).min(1)
    close = dist < 0.1                                                       # 5 standard deviations
    covered = torch.bincount(nearest[close], minlength=8)
    assert (covered >= 10).sum() >= 6, covered                              # seeds 0-3: 8 modes
    assert close.float().mean() > 0.4, close.float().mean()                  # seeds 0-3: 0.49-0.65


def test_conditional_generator_uses_the_label():
    torch.manual_seed(0)
    m = GAN(8, 1, num_classes=4)
    z = torch.randn(3, 100)
    change = m.generate(z, torch.tensor([0, 0, 0])) - m.generate(z, torch.tensor([2, 2, 2]))
    assert change.abs().mean() > 1e-3
    assert m.sample(8).shape == (8, 1, 8, 8)
    terms = m.d_loss(torch.rand(4, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 3]))
    assert set(m.g_loss(None, None)) == {"gan"} and all(torch.isfinite(v) for v in terms.values())


def test_loss_options_and_the_hand_off():
    m = GAN(8, 1, loss="wgan-gp")
    with pytest.raises(RuntimeError, match="call d_loss first"):
        m.g_loss(None)                                                   # no fakes drawn yet
    assert m.n_critic == 5 and set(m.d_loss(torch.rand(4, 1, 8, 8))) == {"real", "fake", "gp"}
    assert set(m.g_loss(None)) == {"wgan"} and GAN(8, 1, n_critic=3).n_critic == 3
    with pytest.raises(ValueError, match="bce, wgan or wgan-gp"):
        GAN(8, 1, loss="hinge")


@pytest.mark.parametrize("extra", [[], ["--loss", "wgan", "--n-critic", 2],
                                   ["--g-loss", "saturating"],
                                   ["--classes", "--soft-labels", "--flip-labels", 0.1,
                                    "--d-dropout", 0.2, "--n-critic", 2]])
def test_command_line(cli, tmp_path, extra):
    out = tmp_path / "run"
    args = ["--image-size", 8, "--hidden", 16, "--batch-size", 16, "--grid", 4, "--log-every", 2,
            *extra]
    r = cli("train.py", "gan", "--steps", 4, "--out", out, *args)
    assert r.returncode == 0, r.out
    assert "D.real" in r.out and ("D(G(z))" in r.out) == ("wgan" not in extra)
    r = cli("train.py", "gan", "--steps", 6, "--out", out, "--resume")
    assert r.returncode == 0, r.out
    r = cli("sample.py", out / "ckpt.pt", "-n", 4, "--out", tmp_path / "s.png")
    assert r.returncode == 0 and (tmp_path / "s.png").exists(), r.out

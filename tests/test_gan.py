"""gan.py: the minimax value, the gradient penalty, mode coverage on 8 Gaussians, the command line."""
import math
import pytest
import torch
import dcgan
import gan
from gan import GAN


def train(model, sample_data, steps, batch):
    """The protocol's loop, as train.py runs it: a D step, then (every n_critic steps) a G step."""
    d_opt, g_opt = model.configure_optimizers()
    for step in range(1, steps + 1):
        x = sample_data(batch)
        d_opt.zero_grad()
        sum(v for v in model.d_loss(x).values() if v.requires_grad).backward()
        d_opt.step()
        if step % model.n_critic == 0:
            g_opt.zero_grad()
            sum(v for v in model.g_loss(x).values() if v.requires_grad).backward()
            g_opt.step()


def test_minimax_value_at_d_one_half():
    """With D(x) = 1/2 everywhere, -log D(x) - log(1 - D(G(z))) = 2 log 2."""
    m = GAN(8, 1)
    m.critic = lambda x, y=None: torch.zeros(x.shape[0], requires_grad=True)   # logit 0: D = 1/2
    terms = m.d_loss(torch.rand(16, 1, 8, 8) * 2 - 1)
    assert (terms["real"] + terms["fake"]).item() == pytest.approx(2 * math.log(2))
    assert terms["D(x)"].item() == terms["D(G(z))"].item() == 0.5


@pytest.mark.parametrize("module", [gan, dcgan])
def test_gradient_penalty_vanishes_for_a_1_lipschitz_critic(module):
    torch.manual_seed(0)
    x, fake = torch.randn(64, 3, 4, 4), torch.randn(64, 3, 4, 4)
    w = torch.randn(48)
    for norm, expected in [(1.0, 0.0), (3.0, 4.0), (0.5, 0.25)]:           # (||w|| - 1)^2 for f(x) = w . x
        critic = lambda v, w=w * norm / w.norm(): v.flatten(1) @ w
        assert module.gradient_penalty(critic, x, fake).item() == pytest.approx(expected, abs=1e-5)


def ring(n, modes=8, radius=0.8, std=0.02):
    k = torch.randint(0, modes, (n,))
    angle = 2 * math.pi * k / modes
    return torch.stack([angle.cos(), angle.sin()], 1) * radius + std * torch.randn(n, 2)


def test_covers_the_modes_of_eight_gaussians():
    """The classic mode-collapse check: samples near at least 6 of 8 modes, most of them close."""
    torch.manual_seed(0)
    m = GAN(1, 2, nz=8, hidden=64, lr=1e-3)                                  # 2-D points: 2 channels, size 1
    train(m, ring, steps=1500, batch=128)
    x = m.sample(2000).view(-1, 2)
    centres = torch.stack([torch.tensor([math.cos(a), math.sin(a)]) * 0.8 for a in torch.arange(8) * math.pi / 4])
    dist, nearest = torch.cdist(x, centres).min(1)
    close = dist < 0.1                                                       # 5 standard deviations
    covered = torch.bincount(nearest[close], minlength=8)
    assert (covered >= 10).sum() >= 6, covered                              # seeds 0-2: 7 or 8 modes
    assert close.float().mean() > 0.6, close.float().mean()                  # seeds 0-2: 0.61-0.78


def test_conditional_generator_uses_the_label():
    torch.manual_seed(0)
    m = GAN(8, 1, num_classes=4)
    z = torch.randn(3, 100)
    assert (m.generate(z, torch.tensor([0, 0, 0])) - m.generate(z, torch.tensor([2, 2, 2]))).abs().mean() > 1e-3
    assert m.sample(8).shape == (8, 1, 8, 8)
    terms = m.d_loss(torch.rand(4, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 3]))
    assert set(m.g_loss(None, None)) == {"gan"} and all(torch.isfinite(v) for v in terms.values())


def test_wgan_gp_terms_and_critic_steps():
    m = GAN(8, 1, loss="wgan-gp")
    assert m.n_critic == 5 and set(m.d_loss(torch.rand(4, 1, 8, 8))) == {"real", "fake", "gp"}
    assert set(m.g_loss(None)) == {"wgan"}
    with pytest.raises(ValueError, match="bce or wgan-gp"):
        GAN(8, 1, loss="hinge")


@pytest.mark.parametrize("extra", [[], ["--loss", "wgan-gp", "--n-critic", 2], ["--classes"]])
def test_command_line(cli, tmp_path, extra):
    out = tmp_path / "run"
    args = ["--image-size", 8, "--hidden", 16, "--batch-size", 16, "--grid", 4, "--log-every", 2, *extra]
    r = cli("train.py", "gan", "--steps", 4, "--out", out, *args)
    assert r.returncode == 0, r.out
    assert ("D(x)" in r.out and "D(G(z))" in r.out) if not extra else "D.real" in r.out
    r = cli("train.py", "gan", "--steps", 6, "--out", out, "--resume")
    assert r.returncode == 0, r.out
    r = cli("sample.py", out / "ckpt.pt", "-n", 4, "--out", tmp_path / "s.png")
    assert r.returncode == 0 and (tmp_path / "s.png").exists(), r.out

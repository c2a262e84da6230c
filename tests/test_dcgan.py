"""dcgan.py: the lecture's parameter counts, the minimax value, learning on tiny data, the options,
the command line."""
import math
import pytest
import torch
from dcgan import DCGAN


def count(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def test_parameter_counts_match_the_lecture():
    m = DCGAN(64, 3, nz=128, ngf=64, ndf=64)
    assert count(m.G) == 3_806_080
    assert count(m.D, m.D_out) == 2_765_696                                  # BatchNorm after the first conv too
    assert count(*[DCGAN(64, 3, nz=128, bn_first=False)][0].children()) - 3_806_080 == 2_765_568   # the paper's D


def test_sizes_add_or_remove_blocks():
    for S in (8, 16, 32, 64, 128):
        m = DCGAN(S, 3, ngf=8, ndf=8)
        assert m.sample(2).shape == (2, 3, S, S)
        assert m.critic(torch.randn(2, 3, S, S)).shape == (2,)
    with pytest.raises(ValueError, match="power of two"):
        DCGAN(48, 3)


def test_minimax_value_at_d_one_half():
    m = DCGAN(16, 3, ngf=8, ndf=8)
    torch.nn.init.zeros_(m.D_out.weight)                                     # every logit 0: D = 1/2
    terms = m.d_loss(torch.rand(8, 3, 16, 16) * 2 - 1)
    assert (terms["real"] + terms["fake"]).item() == pytest.approx(2 * math.log(2))
    assert terms["D(x)"].item() == pytest.approx(0.5) and terms["D(G(z))"].item() == pytest.approx(0.5)


def test_initialisation_is_the_papers():
    m = DCGAN(64, 3)
    w = torch.cat([p.flatten() for n, p in m.named_parameters() if n.endswith("weight") and p.dim() == 4])
    bn = torch.cat([mod.weight for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)])
    assert abs(w.mean()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01) and bn.std().item() == pytest.approx(0.02, rel=0.2)


def test_learns_the_colour_of_the_data():
    """A few hundred steps on red squares: D does not win outright, and G's samples move from
    grey towards the data's colour statistics."""
    torch.manual_seed(0)
    data = -torch.ones(512, 3, 16, 16)
    for i, (r, c, s) in enumerate(torch.randint(0, 8, (512, 3)).tolist()):
        data[i, 0, r:r + s + 4, c:c + s + 4] = 0.8                           # a red square on black
    target = data.mean((0, 2, 3))                                            # per-channel means
    m = DCGAN(16, 3, nz=32, ngf=32, ndf=16)
    d_opt, g_opt = m.configure_optimizers()
    m.eval()
    before = (m.sample(256).mean((0, 2, 3)) - target).abs().sum()
    m.train()
    correct = []
    for step in range(300):
        x = data[torch.randint(0, 512, (64,))]
        d_opt.zero_grad()
        terms = m.d_loss(x)
        sum(v for v in terms.values() if v.requires_grad).backward()
        d_opt.step()
        g_opt.zero_grad()
        sum(m.g_loss(x).values()).backward()
        g_opt.step()
        if step >= 200:                                                  # D's accuracy as the loop sees it
            correct.append((terms["D(x)"] + 1 - terms["D(G(z))"]) / 2)
    accuracy = torch.stack(correct).mean()
    m.eval()
    after = (m.sample(256).mean((0, 2, 3)) - target).abs().sum()
    assert accuracy < 0.95, accuracy
    assert after < 0.6 * before, (before, after)


def test_conditional_acgan_and_wgan_gp():
    torch.manual_seed(0)
    x, y = torch.rand(4, 3, 16, 16) * 2 - 1, torch.tensor([0, 1, 2, 1])
    cond = DCGAN(16, 3, 3, ngf=8, ndf=8)
    z = torch.randn(2, 128)
    assert (cond.generate(z, torch.tensor([0, 0])) - cond.generate(z, torch.tensor([2, 2]))).abs().mean() > 1e-4
    assert cond.D[0][0].in_channels == 3 + 3                                 # one-hot maps join D's input
    ac = DCGAN(16, 3, 3, ngf=8, ndf=8, acgan=True)
    assert ac.D[0][0].in_channels == 3 and "aux" in ac.d_loss(x, y) and "aux" in ac.g_loss(x, y)
    w = DCGAN(16, 3, ngf=8, ndf=8, loss="wgan-gp")
    assert w.n_critic == 5 and not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in w.D.modules())
    assert set(w.d_loss(x)) == {"real", "fake", "gp"} and set(w.g_loss(x)) == {"wgan"}
    with pytest.raises(ValueError, match="--classes"):
        DCGAN(16, 3, acgan=True)


@pytest.mark.parametrize("extra", [[], ["--classes", "--acgan"], ["--loss", "wgan-gp", "--n-critic", 2]])
def test_command_line(cli, tmp_path, extra):
    out = tmp_path / "run"
    args = ["--image-size", 16, "--ngf", 8, "--ndf", 8, "--batch-size", 8, "--grid", 4, "--log-every", 2, *extra]
    r = cli("train.py", "dcgan", "--steps", 4, "--out", out, *args)
    assert r.returncode == 0, r.out
    assert "D.real" in r.out and ("D.aux" in r.out if "--acgan" in extra else True)
    r = cli("train.py", "dcgan", "--steps", 6, "--out", out, "--resume")
    assert r.returncode == 0, r.out
    r = cli("sample.py", out / "ckpt.pt", "-n", 4, "--gif", "--frames", 4, "--out", tmp_path / "s.png")
    assert r.returncode == 0 and (tmp_path / "s.gif").exists(), r.out

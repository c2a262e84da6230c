"""progan.py: equalised lr and its step sizes, pixel norm, minibatch std, the growing schedule, the
fade-in on G's and D's side and of the reals, a phase switch that keeps the weights, WGAN-GP with
the drift term, the paper's parameter counts, learning on tiny data, exact resume mid-phase
through train.py (ProGAN and StyleGAN --progressive), the command line."""
import math
import pytest
import torch
import torch.nn.functional as F
import train
from progan import (Equalized, ProGAN, features, minibatch_std, pixel_norm, reals, schedule,
                    to_image)
from test_resume import ctrl_c_after, differences, read, one_thread   # noqa: F401 (a fixture)


def tiny(size=8, **kw):
    return ProGAN(size, 3, **{**dict(z_dim=16, ch=8, max_ch=16), **kw})


def at(m, seen):
    """The model as it is after `seen` images."""
    m.seen.fill_(seen)
    return m


def pool(x, f):
    """Average pooling by f, written out: the mean of each f x f block."""
    B, C, H, W = x.shape
    return x.reshape(B, C, H // f, f, W // f, f).mean((3, 5))


def up(x, f=2):
    """Nearest upsampling by f, written out: each pixel repeated f x f times."""
    return x.repeat_interleave(f, 2).repeat_interleave(f, 3)


def test_parameter_counts_match_the_papers(monkeypatch):
    """At 1024x1024 with the paper's widths (512 down to 16, z of 512): G and D have 23.1M
    parameters each (Table 2)."""
    empty = lambda *a, **k: torch.empty(*a, **k)
    monkeypatch.setattr(torch, "randn", empty)           # counting only
    m = ProGAN(1024, 3, z_dim=512, ch=16, max_ch=512)
    g = sum(p.numel() for n, p in m.named_parameters() if not n.startswith("D"))
    d = sum(p.numel() for n, p in m.named_parameters() if n.startswith("D"))
    assert round(g / 1e6, 1) == 23.1 and round(d / 1e6, 1) == 23.1, (g, d)
    assert m.levels == 9 and len(m.to_rgb) == 9 and len(m.D_rgb) == 9   # 4x4 ... 1024x1024


def test_equalised_lr_weights_have_he_std():
    """Stored weights ~ N(0, 1), N(0, 1/lr_mul^2) with a multiplier; used, w * c has He's std
    sqrt(2 / fan_in) (gain 1: 1 / sqrt(fan_in)), for linear layers and k x k convs."""
    torch.manual_seed(0)
    for layer, fan_in, gain, lr_mul in [(Equalized(64, 512, 3), 576, 2**0.5, 1.0),
                                        (Equalized(256, 256, 0, lr_mul=0.01), 256, 2**0.5, 0.01),
                                        (Equalized(64, 512, 1, gain=1.0), 64, 1.0, 1.0)]:
        n = layer.weight.numel()
        tol = 3 / math.sqrt(2 * n) + 0.01                # 3 standard errors of a std
        assert layer.weight.std().item() == pytest.approx(1 / lr_mul, rel=tol)
        used = (layer.weight * layer.scale).std().item()
        assert used == pytest.approx(gain / math.sqrt(fan_in), rel=tol)
    conv = Equalized(4, 2, 3)
    x = torch.randn(1, 4, 5, 5)
    want = F.conv2d(x, conv.weight * math.sqrt(2 / 36), padding=1)   # He: sqrt(2 / (4 * 3 * 3))
    assert torch.allclose(conv(x), want, atol=1e-6)


def test_equalised_lr_steps_move_used_weights_by_c_and_biases_by_lr_mul():
    """Adam's first step moves every stored parameter by lr (its size, whatever the gradient's):
    the used weights w * c then move by lr * c, and the used biases b * lr_mul by lr * lr_mul."""
    torch.manual_seed(0)
    layer = Equalized(8, 4, lr_mul=0.01).double()       # float64: steps 1e-5 of weights ~100
    used_w = lambda: layer.weight.detach() * layer.scale
    used_b = lambda: layer.bias.detach() * layer.lr_mul
    w0, b0 = used_w(), used_b()
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    (layer(torch.randn(16, 8).double()) * torch.randn(16, 4).double()).sum().backward()
    opt.step()
    c = 2**0.5 * 0.01 / math.sqrt(8)
    assert torch.allclose((used_w() - w0).abs(), torch.full((4, 8), 1e-3 * c).double())
    assert torch.allclose((used_b() - b0).abs(), torch.full((4,), 1e-3 * 0.01).double())
    x = torch.randn(3, 8).double()
    want = x @ (layer.weight * c).T + 0.01 * layer.bias                 # what the layer computes
    assert torch.allclose(layer(x), want, atol=1e-6)


def test_pixel_norm_gives_each_pixel_unit_mean_square_over_its_channels():
    torch.manual_seed(0)
    a = torch.randn(2, 5, 3, 3) * torch.tensor([0.1, 1.0, 30.0]).view(1, 1, 1, 3)
    b = pixel_norm(a)
    assert torch.allclose(b.pow(2).mean(1), torch.ones(2, 3, 3), atol=1e-5)
    assert torch.allclose(b / b.norm(dim=1, keepdim=True), a / a.norm(dim=1, keepdim=True))


def test_minibatch_std_on_a_hand_made_batch():
    """Channel 0 is [0, 0, 2, 2] over the batch at every position (std 1); channel 1 is constant
    except at one position, [0, 4, 0, 4] (std 2). Mean over 2 channels x 4 positions:
    (4 * 1 + 2) / 8 = 0.75."""
    h = torch.zeros(4, 2, 2, 2)
    h[2:, 0] = 2.0
    h[:, 1] = 1.0
    h[:, 1, 0, 0] = torch.tensor([0.0, 4.0, 0.0, 4.0])
    out = minibatch_std(h, group=4)
    assert out.shape == (4, 3, 2, 2) and torch.equal(out[:, :2], h)
    assert torch.allclose(out[:, 2], torch.full((4, 2, 2), 0.75), atol=1e-4)
    two = minibatch_std(torch.cat([h, 3 * h]), group=4)  # two groups of 4: 0.75 and 2.25
    assert torch.allclose(two[:, 2, 0, 0], torch.tensor([0.75] * 4 + [2.25] * 4), atol=1e-4)
    torch.manual_seed(0)
    m, x = tiny(), torch.randn(8, 3, 8, 8)
    d = lambda x: at(m, 10**6).critic(x).detach()
    x2 = x.clone()
    x2[1] += 1.0                                         # another sample of the first group
    assert (d(x2)[0] - d(x)[0]).abs() > 1e-4             # D sees its group...
    assert torch.equal(d(x2)[4:], d(x)[4:])              # ... and only its group


def test_schedule_by_hand():
    """4 levels, fade 10, stable 5: 4x4 for 5 images, then per level 10 fading in, 5 stable."""
    s = lambda seen: schedule(seen, 4, 10, 5)
    assert s(0) == (0, 1.0) and s(4) == (0, 1.0)
    assert s(5) == (1, 0.0) and s(10) == (1, 0.5) and s(15) == (1, 1.0) and s(19) == (1, 1.0)
    assert s(20) == (2, 0.0) and s(27) == (2, 0.7)
    assert s(35) == (3, 0.0) and s(49) == (3, 1.0) and s(10**9) == (3, 1.0)
    assert schedule(123, 1, 10, 5) == (0, 1.0)           # a 4x4 model never grows


def test_g_fade_in_alpha_0_is_the_upsampled_old_output_and_alpha_1_the_new_blocks():
    torch.manual_seed(0)
    m = tiny(16, fade_images=8, stable_images=4)
    z = torch.randn(3, 16)
    with torch.no_grad():
        h4 = m.G[0](pixel_norm(z))                       # (c4, 4, 4)
        h8 = m.G[1](h4)                                  # the block of 8x8
        old, new = up(m.to_rgb[0](h4)), m.to_rgb[1](h8)
        assert torch.equal(at(m, 3).generate(z), m.to_rgb[0](h4))   # 4x4, before growing
        assert torch.equal(at(m, 4).generate(z), old)    # alpha = 0: the old path, upsampled
        assert torch.equal(at(m, 12).generate(z), new)   # alpha = 1: the new block's
        assert torch.allclose(at(m, 6).generate(z), 0.75 * old + 0.25 * new, atol=1e-6)
        assert (old - new).abs().max() > 0.1             # the two differ: the blend shows
        assert at(m, 6).sample(3).shape == (3, 3, 16, 16)   # drawn at 8x8, upsampled to 16x16
        s = at(m, 0).sample(3)
        assert torch.equal(s, up(pool(s, 4), 4))         # at 4x4: constant on 4 x 4 blocks
    hs = [torch.randn(2, 16, 4, 4), torch.randn(2, 16, 8, 8)]
    assert torch.equal(to_image(m.to_rgb, hs, 0.0, m.levels), up(m.to_rgb[0](hs[0])))


def test_d_fade_in_alpha_0_is_the_old_path_on_the_pooled_image_and_alpha_1_the_new_block():
    torch.manual_seed(0)
    m = tiny(16)
    x = torch.randn(4, 3, 8, 8)                          # an image at r = 8
    with torch.no_grad():
        old = m.D_rgb[0](pool(x, 2))                     # fromRGB_4(pool(x))
        new = m.D[0](m.D_rgb[1](x))                      # block_8(fromRGB_8(x))
        assert torch.allclose(features(m.D_rgb, m.D, x, 1, 0.0), old, atol=1e-6)
        assert torch.equal(features(m.D_rgb, m.D, x, 1, 1.0), new)
        mid = features(m.D_rgb, m.D, x, 1, 0.25)
        assert torch.allclose(mid, 0.75 * old + 0.25 * new, atol=1e-6)
        assert (old - new).abs().max() > 0.1
        big = torch.randn(4, 3, 16, 16)                  # a larger image: pooled to r first
        assert torch.allclose(features(m.D_rgb, m.D, big, 1, 1.0),
                              m.D[0](m.D_rgb[1](pool(big, 2))), atol=1e-6)
        full = m.D[0](m.D[1](m.D_rgb[2](big)))           # grown: 16 -> 8 -> 4
        assert torch.equal(features(m.D_rgb, m.D, big, 2, 1.0), full)


def test_the_reals_are_pooled_to_r_and_blended_as_gs_output():
    """(1 - alpha) up(pool(x_r)) + alpha x_r, x_r the image pooled to r, by hand on 16x16."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    x8 = pool(x, 2)
    assert torch.allclose(reals(x, 1, 1.0), x8, atol=1e-6)
    assert torch.allclose(reals(x, 1, 0.0), up(pool(x8, 2)), atol=1e-6)
    assert torch.allclose(reals(x, 1, 0.3), 0.7 * up(pool(x8, 2)) + 0.3 * x8, atol=1e-6)
    assert torch.allclose(reals(x, 0, 1.0), pool(x, 4), atol=1e-6)
    assert torch.equal(reals(x, 2, 1.0), x)


def test_a_phase_switch_keeps_the_weights_and_gs_image():
    """Training across the switch from 4x4 to 8x8: no layer is made anew (the same tensors, the
    optimizers' too), and right after it (alpha = 0) G's image is the 4x4 one upsampled."""
    torch.manual_seed(0)
    m = tiny(8, fade_images=8, stable_images=4)
    params = dict(m.named_parameters())
    d_opt, g_opt = m.configure_optimizers()
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    for opt, objective in ((d_opt, m.d_loss), (g_opt, m.g_loss)):
        opt.zero_grad()
        sum(objective(x).values()).backward()
        opt.step()
    assert int(m.seen) == 4 and m.phase() == (1, 0.0)    # the batch counted: the switch
    assert dict(m.named_parameters()) == params          # the same tensors, none replaced
    opt_params = {id(p) for opt in (d_opt, g_opt) for g in opt.param_groups for p in g["params"]}
    assert opt_params == {id(p) for p in params.values()}
    z = torch.randn(3, 16)
    with torch.no_grad():
        before = at(m, 3).generate(z)
        after = at(m, 4).generate(z)
    assert torch.equal(after, up(before))


def test_wgan_gp_losses_on_a_linear_d():
    """With D(x) = <v, x>: the gradient at any x^ is v, so GP = lambda (||v|| - 1)^2; the
    Wasserstein term is mean D(G(z)) - mean D(x), the drift eps_drift mean D(x)^2, G's -D(G(z))."""
    torch.manual_seed(0)
    m = at(tiny(8, gp_lambda=3.0, eps_drift=0.1), 10**6)
    v = (0.05 * torch.randn(3 * 8 * 8)).requires_grad_(True)
    m.critic = lambda x, y=None: x.flatten(1) @ v
    x = torch.rand(5, 3, 8, 8) * 2 - 1
    terms = m.d_loss(x)
    real, fake = (x.flatten(1) @ v).detach(), (m.fake.flatten(1) @ v).detach()
    assert terms["gp"].item() == pytest.approx(3.0 * (v.norm().item() - 1) ** 2, rel=1e-5)
    assert terms["wasserstein"].item() == pytest.approx((fake.mean() - real.mean()).item(),
                                                        abs=1e-6)
    assert terms["drift"].item() == pytest.approx(0.1 * real.pow(2).mean().item(), rel=1e-5)
    assert m.g_loss(x)["gan"].item() == pytest.approx(-fake.mean().item(), rel=1e-5)
    grad, = torch.autograd.grad(terms["gp"], v)          # D trains on the penalty
    want = 3.0 * 2 * (v.norm() - 1) * v / v.norm()
    assert torch.allclose(grad, want.detach(), rtol=1e-4)


def test_d_step_stops_at_g_and_g_step_reaches_it():
    """Mid fade-in, where every layer is in use: D's terms give G's parameters no gradient, G's
    term reaches every one of them."""
    torch.manual_seed(0)
    m = at(tiny(8, fade_images=8, stable_images=4), 8)  # 8x8, alpha 0.5
    sum(m.d_loss(torch.randn(4, 3, 8, 8)).values()).backward()
    g_params = [p for name, p in m.named_parameters() if not name.startswith("D")]
    assert all(p.grad is None for p in g_params)
    assert all(p.grad is not None for name, p in m.named_parameters() if name.startswith("D"))
    m.g_loss(torch.zeros(4, 3, 8, 8))["gan"].backward()
    assert all(p.grad is not None for p in g_params)


def test_learns_the_colour_of_the_data_while_growing():
    """60 steps on red squares at 8x8, growing from 4x4 (fade 64, stable 64 images), lr 1e-2:
    the samples' per-channel means move most of the way to the data's."""
    torch.manual_seed(0)
    data = -torch.ones(256, 3, 8, 8)
    for i, (r, c) in enumerate(torch.randint(0, 4, (256, 2)).tolist()):
        data[i, 0, r:r + 4, c:c + 4] = 0.8               # a red square on black
    target = data.mean((0, 2, 3))
    m = tiny(8, lr=1e-2, fade_images=64, stable_images=64)
    d_opt, g_opt = m.configure_optimizers()
    dist = lambda: (m.sample(256).mean((0, 2, 3)) - target).abs().sum()
    before = dist()
    for step in range(60):
        x = data[torch.randint(0, 256, (16,))]
        for opt, objective in ((d_opt, m.d_loss), (g_opt, m.g_loss)):
            opt.zero_grad()
            sum(objective(x).values()).backward()
            opt.step()
    assert m.phase() == (1, 1.0)                         # grown to 8x8 on the way
    after = dist()
    assert after < 0.3 * before, (before, after)


@pytest.mark.parametrize("name, flags", [
    ("progan", ["--ch", 8, "--max-ch", 8, "--z-dim", 8]),
    ("stylegan", ["--ch", 8, "--max-ch", 8, "--z-dim", 8, "--w-dim", 8, "--n-mlp", 2,
                  "--progressive"])])
def test_ctrl_c_mid_fade_in_and_resume_give_the_uninterrupted_run(cli, tmp_path, monkeypatch,
                                                                    one_thread, name, flags):
    """Batches of 2, 4 images at 4x4, then 4 fading in: stopped after step 3 (6 images seen,
    alpha = 0.5), resumed to step 6, every tensor equals a run never stopped."""
    a, b = tmp_path / "a", tmp_path / "b"
    run = [*flags, "--image-size", 8, "--mbstd-group", 2, "--fade-images", 4,
           "--stable-images", 4, "--batch-size", 2, "--grid", 2, "--steps", 6, "--log-every", 1,
           "--quiet"]
    monkeypatch.setattr(train, "train_step", ctrl_c_after(3))
    r = cli("train.py", name, "--out", a, *run)
    monkeypatch.undo()
    assert r.returncode == 130, r.out
    assert int(read(a)["weights"]["seen"]) == 6          # mid-phase: alpha 0.5 of 8x8
    r = cli("train.py", name, "--resume", "--out", a)
    assert r.returncode == 0, r.out
    r = cli("train.py", name, "--out", b, *run)
    assert r.returncode == 0, r.out
    resumed, straight = read(a), read(b)
    assert int(straight["weights"]["seen"]) == 12 and int(straight["ema"]["seen"]) == 12
    assert differences(resumed, straight) == []
    r = cli("sample.py", b / "ckpt.pt", "-n", 4, "--out", tmp_path / "s.png")
    assert r.returncode == 0 and (tmp_path / "s.png").exists(), r.out


def test_command_line_refuses_labels(cli, tmp_path):
    r = cli("train.py", "progan", "--classes", "--steps", 1, "--out", tmp_path / "c",
            "--image-size", 8, "--ch", 8, "--max-ch", 8)
    assert r.returncode == 1 and "num_classes" in r.stderr, r.out

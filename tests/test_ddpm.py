"""ddpm.py: the forward process, the posterior, the samplers against an oracle, guidance, learning."""
import math
import pytest
import torch
from ddpm import DDPM

TINY = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_res=(4,), dropout=0.0)


def test_closed_form_q_matches_iterating_the_chain():
    """Eq. 4 against x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps, iterated t times."""
    torch.manual_seed(0)
    m = DDPM(4, 1, **TINY)
    x0 = torch.tensor([-0.8, 0.1, 0.9]).repeat(20_000, 1)                    # (20000, 3)
    for t in (1, 50, 300, 1000):
        x = x0.clone()
        for i in range(t):                                                    # index i is step i + 1
            x = (1 - m.beta[i]).sqrt() * x + m.beta[i].sqrt() * torch.randn_like(x)
        closed = m.q_sample(x0.view(-1, 3, 1, 1), torch.full((len(x0),), t - 1), torch.randn(len(x0), 3, 1, 1))
        ab = m.alpha_bar[t - 1].float()
        for sample in (x, closed.view(-1, 3)):
            assert torch.allclose(sample.mean(0), ab.sqrt() * x0[0], atol=0.02)
            assert torch.allclose(sample.var(0), (1 - ab).expand(3), rtol=0.05, atol=2e-4)


def test_posterior_matches_bayes_rule():
    """Eq. 6, 7 against the product of q(x_t | x_{t-1}) and q(x_{t-1} | x_0), worked out apart."""
    m = DDPM(4, 1, **TINY)
    x0, x_t = torch.tensor([0.3]), torch.tensor([-1.2])
    for i in (1, 10, 500, 999):                                               # steps t = i + 1 >= 2
        alpha, beta, ab_prev = m.alpha[i].double(), m.beta[i].double(), m.alpha_bar[i - 1].double()
        # x_t | x_{t-1} ~ N(sqrt(alpha) x_{t-1}, beta): as a function of x_{t-1}, precision alpha / beta
        precision = alpha / beta + 1 / (1 - ab_prev)
        mean = (alpha.sqrt() * x_t / beta + ab_prev.sqrt() * x0 / (1 - ab_prev)) / precision
        got_mean, got_var = m.posterior(x0.view(1, 1, 1, 1), x_t.view(1, 1, 1, 1), torch.tensor([i]))
        assert got_mean.item() == pytest.approx(mean.item(), rel=1e-3)         # float32 buffers
        assert got_var.item() == pytest.approx(1 / precision.item(), rel=1e-3)
    assert m.beta_tilde[0] == 0 and m.alpha_bar_prev[0] == 1                  # t = 1: x_0 is known exactly


def oracle(m, mu, s):
    """For x_0 ~ N(mu, s^2 I) the best noise prediction is E[eps | x_t], in closed form."""
    def eps_theta(x_t, t, y=None):
        ab = m.alpha_bar[t].view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * (x_t - ab.sqrt() * mu) / (ab * s**2 + 1 - ab)
    return eps_theta


@pytest.mark.parametrize("knobs, tol", [(dict(sampler="ddpm"), 0.01), (dict(sampler="ddpm", variance="posterior"), 0.01),
                                        (dict(sampler="ddim", steps=50), 0.03), (dict(sampler="ddim", eta=1.0), 0.01),
                                        (dict(sampler="ddim", steps=50, eta=0.5), 0.03),
                                        (dict(sampler="ddim", steps=50, spacing="leading"), 0.03),
                                        (dict(sampler="ddim", steps=50, spacing="trailing"), 0.03),
                                        (dict(sampler="ddim", steps=50, spacing="snr"), 0.03),
                                        (dict(sampler="ddpm", steps=50, spacing="snr"), 0.03),
                                        (dict(sampler="ddpm", steps=100, spacing="trailing", threshold=0.995), 0.02),
                                        (dict(sampler="ddim", steps=50, spacing="trailing", threshold=0.995), 0.03)])
def test_samplers_with_the_optimal_denoiser_recover_the_data_distribution(knobs, tol):
    """1000 DDPM steps land within 4% of s; 50 DDIM steps within 12%: their coarse steps are the
    price of speed (the next test predicts DDIM's shortfall exactly). Every spacing, eta and
    dynamic thresholding keep the data's mean and spread (this data lies in [-1, 1], where the
    oracle's x0_hat, a posterior mean, stays: thresholding must then change nothing)."""
    torch.manual_seed(0)
    m = DDPM(8, 1, **TINY)
    mu, s = 0.1, 0.25
    m.eps_theta = oracle(m, mu, s)
    x = m.sample(200, **knobs)                                               # 200 x 64 values
    assert x.mean().item() == pytest.approx(mu, abs=0.01)
    assert x.std().item() == pytest.approx(s, abs=tol)


def test_ddim_with_eta_1_is_ancestral_sampling_with_the_posterior_variance():
    m = DDPM(8, 1, **TINY)
    m.eps_theta = oracle(m, 0.1, 0.25)
    torch.manual_seed(0)
    a = m.sample(4, sampler="ddim", eta=1.0, steps=30)
    torch.manual_seed(0)
    b = m.sample(4, sampler="ddpm", variance="posterior", steps=30)
    assert torch.allclose(a, b, atol=1e-4)


def test_ddim_noise_is_eta_times_the_respaced_posterior_std():
    """Song et al., Eq. 16: sigma = eta sqrt(beta~) of the step t -> t', beta~ from Eq. 7 on the respaced
    chain (DDPM.posterior). With eps = 0 a DDIM step is sqrt(alpha_bar_t' / alpha_bar_t) x_t + sigma z."""
    m = DDPM(8, 1, **TINY)
    x_t, zero = torch.randn(4, 1, 8, 8), torch.zeros(4, 1, 8, 8)
    for t, t_prev, eta in ((999, 899, 0.5), (500, 300, 0.3), (40, 0, 1.0)):
        _, beta_tilde = m.posterior(zero, x_t, torch.tensor([t]), t_prev)
        torch.manual_seed(0)
        got = m.ddim_step(x_t, zero, t, t_prev, eta, clip=False)
        torch.manual_seed(0)
        want = (m.alpha_bar[t_prev] / m.alpha_bar[t]).sqrt().float() * x_t + eta * beta_tilde.sqrt() * torch.randn_like(x_t)
        assert torch.allclose(got, want, atol=1e-5), (t, eta)


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing", "snr"])
def test_spacings_are_strictly_decreasing_of_the_asked_length_in_range(spacing):
    m = DDPM(8, 1, **TINY)
    for strength in (1.0, 0.5, 0.007):
        start = round(strength * m.T)
        for S in (1, 2, 3, 7, 10, 25, 50, 100, 250, 999, 1000, 5000):
            ts = m.timesteps(S, strength, spacing)
            assert len(ts) == min(S, start) and all(a > b for a, b in zip(ts, ts[1:])), (strength, S)
            assert 0 <= ts[-1] and ts[0] <= start - 1, (strength, S)
            if S >= start:
                assert ts == list(range(start - 1, -1, -1))                    # every step: Algorithm 2
    ts = m.timesteps(10, spacing=spacing)                                   # Lin et al., Table 2, as indices t - 1
    first, last, gap = dict(linspace=(999, 0, 111), leading=(900, 0, 100), trailing=(999, 99, 100), snr=(999, 0, None))[spacing]
    assert ts[0] == first and ts[-1] == last                                # the range each one claims
    if gap:
        assert all(round(abs(a - b - gap)) <= 1 for a, b in zip(ts, ts[1:]))   # evenly spaced in t
    else:                                                                    # evenly spaced in log-SNR
        ab = m.alpha_bar[m.timesteps(20, spacing="snr")]
        log_snr = (ab / (1 - ab)).log()
        want = ((m.alpha_bar[0] / (1 - m.alpha_bar[0])).log() - (m.alpha_bar[-1] / (1 - m.alpha_bar[-1])).log()) / 19
        assert torch.allclose(log_snr.diff()[:12], want.expand(12), rtol=0.05)    # until the steps run out near t = 1


def test_dynamic_thresholding_clips_at_the_percentile_and_rescales():
    """Imagen: s = max(1, the p-quantile of |x0_hat|) per sample; x0_hat -> clamp(x0_hat, -s, s) / s.
    When s comes out 1 it is plain clipping. With p = 1, s = max(1, max |x0_hat|): nothing is clipped,
    the sample is divided by its largest value, so it equals clipping only where |x0_hat| <= 1."""
    m = DDPM(8, 1, **TINY)
    x0 = torch.stack([torch.linspace(0, 2, 11) * torch.tensor([1., -1] * 5 + [1]),   # |x0| = 0, 0.2, .., 2
                      torch.linspace(-0.5, 0.5, 11),                                  # inside [-1, 1]
                      torch.tensor([0.1] * 10 + [3.0])]).view(3, 1, 1, 11)              # one outlier
    t, eps = 500, torch.randn(3, 1, 1, 11)
    ab = m.alpha_bar[t].float()
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps                            # Eq. 4: then x0_hat = x0
    got, eps_got = m.predict_x0(x_t, eps, t, clip=False, threshold=0.9)      # 0.9 of 11 sorted: the 10th
    assert torch.allclose(got[0], x0[0].clamp(-1.8, 1.8) / 1.8, atol=1e-5)   # s = 1.8
    assert torch.allclose(got[1:], x0[1:].clamp(-1, 1), atol=1e-5)          # s = max(1, ..) = 1: clipping
    assert torch.allclose(ab.sqrt() * got + (1 - ab).sqrt() * eps_got, x_t, atol=1e-5)   # eps re-derived: Eq. 4
    got, _ = m.predict_x0(x_t, eps, t, clip=False, threshold=1.0)
    assert torch.allclose(got, x0 / torch.tensor([2.0, 1.0, 3.0]).view(3, 1, 1, 1), atol=1e-5)
    assert torch.allclose(got[1], x0[1].clamp(-1, 1), atol=1e-5) and not torch.allclose(got[0], x0[0].clamp(-1, 1))
    m.eps_theta = lambda x_t, t, y=None: torch.zeros_like(x_t)               # reverse uses it: x0_hat = x_T / sqrt(alpha_bar)
    torch.manual_seed(0)
    x_T, z = torch.randn(2, 3, 1, 8, 8)
    x0_hat = x_T / m.alpha_bar[999].sqrt().float()
    s = x0_hat.abs().flatten(1).quantile(0.9, dim=1).clamp(min=1).view(3, 1, 1, 1)
    mean, var = m.posterior((x0_hat.clamp(-s, s) / s), x_T, torch.tensor([999]), 899)
    for knobs in (dict(sampler="ddim", eta=1.0), dict(sampler="ddpm", variance="posterior")):   # the same step
        torch.manual_seed(0)
        got = next(m.reverse(3, None, [999, 899], threshold=0.9, **knobs))
        assert torch.allclose(got, mean + var.sqrt() * z, atol=1e-5), knobs


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing", "snr"])
def test_ddim_is_euler_on_the_probability_flow_ode(spacing):
    """With eta = 0, DDIM moves x_bar = x_t / sqrt(alpha_bar) by eps * d(sigma_bar), sigma_bar =
    sqrt((1 - alpha_bar) / alpha_bar): Euler steps. For Gaussian data, eps is linear in x_bar, so the
    spread after S steps is known exactly: a product of one factor per step, on each spacing's steps
    (0.19 of s = 0.25 evenly spaced in t, 0.22 evenly spaced in log-SNR)."""
    torch.manual_seed(0)
    m = DDPM(8, 1, **TINY)
    mu, s = 0.1, 0.25
    m.eps_theta = oracle(m, mu, s)
    ab = m.alpha_bar.double()
    sigma_bar = lambda i: ((1 - ab[i]) / ab[i]).sqrt() if i >= 0 else 0.0
    ts = m.timesteps(20, spacing=spacing)
    spread = 1 / ab[ts[0]].sqrt()                                            # x_T ~ N(0, I), in x_bar units
    for t, t_next in zip(ts, ts[1:] + [-1]):
        spread = spread * (1 + (sigma_bar(t_next) - sigma_bar(t)) * sigma_bar(t) / (s**2 + sigma_bar(t) ** 2))
    x = m.sample(200, sampler="ddim", steps=20, spacing=spacing)
    assert x.std().item() == pytest.approx(spread.item(), rel=0.02) and spread < 0.95 * s


def test_clipping_x0_is_the_posterior_mean_at_the_clipped_x0():
    """clip=True: one step of Eq. 11 equals Eq. 7's mean at x0_hat clamped to [-1, 1], plus sigma_t z;
    a poor predictor then still ends inside the data's range, where without clipping it blows up."""
    m = DDPM(8, 1, **TINY)
    m.eps_theta = lambda x_t, t, y=None: torch.zeros_like(x_t)               # x0_hat = x_t / sqrt(alpha_bar_t)
    for t in (999, 500, 20):
        torch.manual_seed(0)
        x_t = torch.randn(4, 1, 8, 8)                                        # the x_T that reverse draws
        z = torch.randn_like(x_t)                                            # and its first step's noise
        torch.manual_seed(0)
        got = next(m.reverse(4, None, [t, t - 1], clip=True))
        x0_hat = (x_t / m.alpha_bar[t].sqrt()).clamp(-1, 1)
        mean, _ = m.posterior(x0_hat, x_t, torch.full((4,), t))
        assert torch.allclose(got, mean + m.beta[t].sqrt() * z, atol=1e-5)
    torch.manual_seed(0)
    *_, clipped = m.reverse(16, None, m.timesteps(100), clip=True)
    *_, raw = m.reverse(16, None, m.timesteps(100), clip=False)
    assert clipped.abs().max() <= 1 + 1e-6 and raw.std() > 10


def test_a_ddpm_step_is_eq_11_as_printed():
    """Algorithm 2, line 4, written as Eq. 7's mean at x0_hat, against Eq. 11 computed by hand in float64:
    x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z."""
    m = DDPM(8, 1, **TINY)
    m.eps_theta = lambda x_t, t, y=None: 0.3 * x_t + 0.1                     # any predictor will do
    for t in (999, 500, 3, 0):
        torch.manual_seed(0)
        x_t, z = torch.randn(2, 4, 1, 8, 8).double()                         # x_T, then the step's noise
        eps = 0.3 * x_t + 0.1
        beta, alpha, ab = m.beta[t], m.alpha[t], m.alpha_bar[t]
        want = (x_t - beta / (1 - ab).sqrt() * eps) / alpha.sqrt() + (beta.sqrt() * z if t > 0 else 0)
        torch.manual_seed(0)
        got = next(m.reverse(4, None, [t, t - 1] if t > 0 else [0], clip=False))
        assert torch.allclose(got.double(), want, atol=1e-5), t


def test_posterior_coefficients_are_exact_at_t_1():
    """At t = 1, alpha_bar_0 = 1: q(x_0 | x_1, x_0) puts all weight on x_0, so the mean is x_0 itself and
    the variance 0. The float64 coefficients give exactly that (float32 ones weigh x_0 by 0.99983)."""
    m = DDPM(8, 1, **TINY)
    x0, x_t = torch.randn(2, 4, 1, 8, 8)
    mean, var = m.posterior(x0, x_t, torch.zeros(4, dtype=torch.long))
    assert torch.equal(mean, x0) and torch.equal(var, torch.zeros_like(var))


def test_guidance_mixes_the_two_predictions_in_one_call():
    m = DDPM(8, 1, num_classes=3, **TINY)
    calls = []

    def eps_theta(x_t, t, y):                                 # a prediction that depends on y: e_c -> c + 1, zeros -> 0
        calls.append(len(y))
        y = torch.nn.functional.one_hot(y, 3).float() if y.dim() == 1 else y
        return x_t * 0 + (y @ torch.tensor([1.0, 2.0, 3.0])).view(-1, 1, 1, 1)
    m.eps_theta = eps_theta
    x, t, y = torch.zeros(4, 1, 8, 8), torch.full((4,), 10), torch.tensor([0, 1, 2, 1])
    assert torch.equal(m.guided_eps(x, t, y, 1.0), eps_theta(x, t, y))       # w = 1: conditional
    assert torch.equal(m.guided_eps(x, t, y, 0.0), torch.zeros_like(x))      # w = 0: the null, the zero vector
    calls.clear()
    w3 = m.guided_eps(x, t, y, 3.0)
    assert calls == [8] and torch.allclose(w3, 3 * (y.view(-1, 1, 1, 1) + 1.0).expand_as(x))


def test_labels_are_dropped_with_p_uncond():
    torch.manual_seed(0)
    m = DDPM(8, 1, num_classes=5, **TINY)
    seen = []
    m.eps_theta = lambda x_t, t, y: seen.append(y) or torch.zeros_like(x_t)
    y = torch.randint(0, 5, (20_000,))
    m.loss(torch.zeros(20_000, 1, 8, 8), y)
    dropped = (seen[0] == 0).all(1)                                           # the null: the zero vector
    assert dropped.float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert torch.equal(seen[0][~dropped], torch.eye(5)[y[~dropped]])          # the others: one-hot e_y


def test_img2img_and_inpainting():
    torch.manual_seed(0)
    m = DDPM(8, 1, **TINY).eval()
    init = torch.rand(1, 1, 8, 8) * 2 - 1
    assert torch.equal(m.sample(2, init=init, strength=0.0), init.expand(2, -1, -1, -1))   # nothing to undo
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1                                                         # keep the left half
    x = m.sample(2, init=init, mask=mask, sampler="ddim", steps=10)
    assert torch.allclose(x[..., :4], init[..., :4].expand(2, -1, -1, -1))
    assert not torch.allclose(x[..., 4:], init[..., 4:].expand(2, -1, -1, -1), atol=0.1)


def test_cifar10_network_size():
    """The DDPM paper's CIFAR-10 network (ch 128, mult 1,2,2,2, 2 blocks, attention at 16x16) has
    35.7M parameters (Ho et al., Appendix B); this implementation's exact count:"""
    m = DDPM(32, 3, ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_res=(16,), dropout=0.1)
    assert sum(p.numel() for p in m.parameters()) == 35_746_307


def test_the_untrained_network_predicts_zero():
    """Ho et al.'s initialisation: each residual branch and the output start at zero, so the untrained
    eps_theta is 0 and L_simple starts at E||eps||^2 / d = 1, whatever the data."""
    torch.manual_seed(0)
    m = DDPM(8, 3, **TINY)
    x0 = torch.rand(512, 3, 8, 8) * 2 - 1
    assert m.eps_theta(x0, torch.randint(0, 1000, (512,))).abs().max() == 0
    assert m.loss(x0)["mse"].item() == pytest.approx(1.0, abs=0.02)


def test_a_tiny_unet_learns_to_denoise():
    torch.manual_seed(0)
    S = 8
    yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    centres = torch.randint(2, S - 2, (512, 2))
    data = ((yy - centres[:, :1, None]).abs() + (xx - centres[:, 1:, None]).abs() < 2).float()   # small diamonds
    data = (data * 2 - 1)[:, None].repeat(1, 3, 1, 1)                       # (512, 3, 8, 8)
    m = DDPM(S, 3, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_res=(), dropout=0.0, lr=1e-3)
    opt = m.configure_optimizers()
    losses = []
    for step in range(150):
        loss = m.loss(data[torch.randint(0, 512, (32,))])["mse"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = losses[0], sum(losses[-50:]) / 50
    assert first > 0.8 and last < 0.15, (first, last)                        # 1.0 is predicting zero


def test_bad_configurations():
    with pytest.raises(ValueError, match="halve"):
        DDPM(20, 3, ch_mult=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="sampler"):
        DDPM(8, 1, **TINY).sample(1, sampler="euler", steps=2)
    with pytest.raises(ValueError, match="spacing is linspace, leading, trailing or snr"):
        DDPM(8, 1, **TINY).sample(1, spacing="even", steps=2)
    with pytest.raises(ValueError, match="threshold is a quantile"):
        DDPM(8, 1, **TINY).sample(1, threshold=99.5, steps=2)
    assert math.isclose(DDPM(8, 1, **TINY).beta[-1].item(), 0.02, rel_tol=1e-6)


def test_command_line(cli, tmp_path):
    """Train a class-conditional DDPM a few steps on the built-in shapes, resume it, then sample with
    each sampler, guidance, a label, img2img, inpainting and the animation. A 20-step chain keeps
    the sample grids that end each run quick; the samplers' maths is checked above with T = 1000."""
    out = tmp_path / "run"
    tiny = ["--image-size", 8, "--T", 20, "--ch", 32, "--ch-mult", "1,2", "--num-res-blocks", 1, "--attn-res", "",
            "--batch-size", 8, "--grid", 2, "--classes", "--log-every", 2]
    r = cli("train.py", "ddpm", "--steps", 4, "--out", out, *tiny)
    assert r.returncode == 0, r.out
    assert "mse" in r.out and "12 classes" in r.out
    r = cli("train.py", "ddpm", "--steps", 6, "--out", out, "--resume")
    assert r.returncode == 0, r.out
    ck = __import__("torch").load(out / "ckpt.pt", weights_only=True)
    assert ck["step"] == 6 and ck["ema"] is not None                          # EMA on by default, as in the paper
    from PIL import Image
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "init.png")
    mask = Image.new("L", (8, 8), 0)
    mask.paste(255, (0, 0, 4, 8))
    mask.save(tmp_path / "mask.png")
    ckpt = out / "ckpt.pt"
    for knobs in (["--sampler", "ddim", "--steps", 5, "--spacing", "trailing", "--threshold", 0.995], ["--steps", 5, "--variance", "posterior"],
                  ["--sampler", "ddim", "--steps", 5, "--guidance", 3, "--label", "red circle"],
                  ["--steps", 5, "--init", tmp_path / "init.png", "--strength", 0.5],
                  ["--sampler", "ddim", "--steps", 5, "--init", tmp_path / "init.png", "--mask", tmp_path / "mask.png"]):
        r = cli("sample.py", ckpt, "-n", 3, "--out", tmp_path / "s.png", *knobs)
        assert r.returncode == 0 and "wrote" in r.out, (knobs, r.out)
    r = cli("sample.py", ckpt, "-n", 2, "--gif", "--steps", 10, "--frames", 5, "--out", tmp_path / "d.png")
    assert r.returncode == 0 and (tmp_path / "d.gif").exists() and (tmp_path / "d_strip.png").exists(), r.out
    r = cli("sample.py", ckpt, "--sampler", "euler")
    assert r.returncode == 1 and "sampler is ddpm or ddim" in r.out

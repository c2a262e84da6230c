"""ddpm.py: the forward process, the posterior, Algorithm 2 and the full sampler, the samplers
against an oracle, guidance, learning."""
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
        for i in range(t):                                                # index i is step i + 1
            x = (1 - m.beta[i]).sqrt() * x + m.beta[i].sqrt() * torch.randn_like(x)
        t_index = torch.full((len(x0),), t - 1)
        closed = m.q_sample(x0.view(-1, 3, 1, 1), t_index, torch.randn(len(x0), 3, 1, 1))
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
        # x_t | x_{t-1} ~ N(sqrt(alpha) x_{t-1}, beta): in x_{t-1}, precision alpha / beta
        precision = alpha / beta + 1 / (1 - ab_prev)
        mean = (alpha.sqrt() * x_t / beta + ab_prev.sqrt() * x0 / (1 - ab_prev)) / precision
        got_mean, got_var = m.posterior(x0.view(1, 1, 1, 1), x_t.view(1, 1, 1, 1),
                                        torch.tensor([i]))
        assert got_mean.item() == pytest.approx(mean.item(), rel=1e-3)         # float32 buffers
        assert got_var.item() == pytest.approx(1 / precision.item(), rel=1e-3)
    assert m.beta_tilde[0] == 0 and m.alpha_bar_prev[0] == 1         # t = 1: x_0 is known exactly


def oracle(m, mu, s):
    """For x_0 ~ N(mu, s^2 I) the best noise prediction is E[eps | x_t], in closed form."""
    def eps_theta(x_t, t, y=None):
        ab = m.alpha_bar[t].view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * (x_t - ab.sqrt() * mu) / (ab * s**2 + 1 - ab)
    return eps_theta


@pytest.mark.parametrize("knobs, tol", [(dict(sampler="ddpm"), 0.01),
                                        (dict(sampler="ddpm", variance="posterior"), 0.01),
                                        (dict(sampler="ddim", steps=50), 0.03),
                                        (dict(sampler="ddim", eta=1.0), 0.01),
                                        (dict(sampler="ddim", steps=50, eta=0.5), 0.03)])
def test_samplers_with_the_optimal_denoiser_recover_the_data_distribution(knobs, tol):
    """1000 DDPM steps land within 4% of s; 50 DDIM steps within 12%: their coarse steps are the
    price of speed (a test below predicts DDIM's shortfall exactly). Every eta keeps the data's
    mean and spread."""
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
    """Song et al., Eq. 16: sigma = eta sqrt(beta~) of the step t -> t', beta~ from Eq. 7 on the
    respaced chain (DDPM.posterior). With eps = 0 a DDIM step is
    sqrt(alpha_bar_t' / alpha_bar_t) x_t + sigma z."""
    m = DDPM(8, 1, **TINY)
    m.eps_theta = lambda x_t, t, y=None: torch.zeros_like(x_t)
    zero = torch.zeros(4, 1, 8, 8)
    for t, t_prev, eta in ((999, 899, 0.5), (500, 300, 0.3), (40, 0, 1.0)):
        torch.manual_seed(0)
        x_t = torch.randn(4, 1, 8, 8)                                        # the x_T reverse draws
        z = torch.randn_like(x_t)                                            # and its step's noise
        _, beta_tilde = m.posterior(zero, x_t, torch.tensor([t]), t_prev)
        torch.manual_seed(0)
        got = next(m.reverse(4, None, [t, t_prev], "ddim", eta, clip=False))
        scale = (m.alpha_bar[t_prev] / m.alpha_bar[t]).sqrt().float()
        want = scale * x_t + eta * beta_tilde.sqrt() * z
        assert torch.allclose(got, want, atol=1e-5), (t, eta)


def test_timesteps_are_strictly_decreasing_of_the_asked_length_in_range():
    m = DDPM(8, 1, **TINY)
    for strength in (1.0, 0.5, 0.007):
        start = round(strength * m.T)
        for S in (1, 2, 3, 7, 10, 25, 50, 100, 250, 999, 1000, 5000):
            ts = m.timesteps(S, strength)
            assert len(ts) == min(S, start), (strength, S)
            assert all(a > b for a, b in zip(ts, ts[1:])), (strength, S)
            assert 0 <= ts[-1] and ts[0] <= start - 1, (strength, S)
            if S >= start:
                assert ts == list(range(start - 1, -1, -1))              # every step: Algorithm 2
    ts = m.timesteps(10)                                 # Lin et al., Table 2's linspace, as t - 1
    assert ts[0] == 999 and ts[-1] == 0                                      # both ends
    assert all(round(abs(a - b - 111)) <= 1 for a, b in zip(ts, ts[1:]))     # evenly spaced in t


def test_ddim_is_euler_on_the_probability_flow_ode():
    """With eta = 0, DDIM moves x_bar = x_t / sqrt(alpha_bar) by eps * d(sigma_bar), sigma_bar =
    sqrt((1 - alpha_bar) / alpha_bar): Euler steps. For Gaussian data, eps is linear in x_bar, so
    the spread after S steps is known exactly: a product of one factor per step (0.19 of s = 0.25
    on 20 steps evenly spaced in t)."""
    torch.manual_seed(0)
    m = DDPM(8, 1, **TINY)
    mu, s = 0.1, 0.25
    m.eps_theta = oracle(m, mu, s)
    ab = m.alpha_bar.double()

    def sigma_bar(i):
        return ((1 - ab[i]) / ab[i]).sqrt() if i >= 0 else 0.0

    ts = m.timesteps(20)
    spread = 1 / ab[ts[0]].sqrt()                                        # x_T ~ N(0, I), in x_bar
    for t, t_next in zip(ts, ts[1:] + [-1]):
        d_sigma = sigma_bar(t_next) - sigma_bar(t)
        spread = spread * (1 + d_sigma * sigma_bar(t) / (s**2 + sigma_bar(t) ** 2))
    x = m.sample(200, sampler="ddim", steps=20)
    assert x.std().item() == pytest.approx(spread.item(), rel=0.02) and spread < 0.95 * s


def test_clipping_x0_is_the_posterior_mean_at_the_clipped_x0():
    """clip=True: one step of Eq. 11 equals Eq. 7's mean at x0_hat clamped to [-1, 1], plus
    sigma_t z; a poor predictor then still ends inside the data's range, where without clipping it
    blows up."""
    m = DDPM(8, 1, **TINY)
    m.eps_theta = lambda x_t, t, y=None: torch.zeros_like(x_t)    # x0_hat = x_t / sqrt(alpha_bar_t)
    for t in (999, 500, 20):
        torch.manual_seed(0)
        x_t = torch.randn(4, 1, 8, 8)                                   # the x_T that reverse draws
        z = torch.randn_like(x_t)                                       # and its first step's noise
        torch.manual_seed(0)
        got = next(m.reverse(4, None, [t, t - 1], variance="beta", clip=True))
        x0_hat = (x_t / m.alpha_bar[t].sqrt()).clamp(-1, 1)
        mean, _ = m.posterior(x0_hat, x_t, torch.full((4,), t))
        assert torch.allclose(got, mean + m.beta[t].sqrt() * z, atol=1e-5)
    torch.manual_seed(0)
    *_, clipped = m.reverse(16, None, m.timesteps(100), variance="beta", clip=True)
    *_, raw = m.reverse(16, None, m.timesteps(100), variance="beta", clip=False)
    assert clipped.abs().max() <= 1 + 1e-6 and raw.std() > 10


def test_a_ddpm_step_is_eq_11_as_printed():
    """Algorithm 2, line 4, written as Eq. 7's mean at x0_hat, against Eq. 11 computed by hand in
    float64: x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z.
    """
    m = DDPM(8, 1, **TINY)
    m.eps_theta = lambda x_t, t, y=None: 0.3 * x_t + 0.1                     # any predictor will do
    for t in (999, 500, 3, 0):
        torch.manual_seed(0)
        x_t, z = torch.randn(2, 4, 1, 8, 8).double()                    # x_T, then the step's noise
        eps = 0.3 * x_t + 0.1
        beta, alpha, ab = m.beta[t], m.alpha[t], m.alpha_bar[t]
        want = (x_t - beta / (1 - ab).sqrt() * eps) / alpha.sqrt()
        if t > 0:
            want = want + beta.sqrt() * z
        torch.manual_seed(0)
        got = next(m.reverse(4, None, [t, t - 1] if t > 0 else [0], variance="beta", clip=False))
        assert torch.allclose(got.double(), want, atol=1e-5), t


def test_sample_with_its_knobs_off_is_algorithm_2():
    """sample() with sampler="ddpm", all T steps, guidance 1, no init or mask, variance="beta"
    (sigma_t^2 = beta_t) and clip=False (Algorithm 2 does not clip) draws, from the same seed, the
    x_0 of algorithm_2: Eq. 11 as printed against Eq. 7's mean at x0_hat. A tiny U-Net with random
    weights (zero-initialised, eps_theta would be 0) and T = 20, so that every step matters. Each
    one-line mistake below was tried, and this test fails on it:
    algorithm_2: sigma_t = beta_t instead of sqrt(beta_t): fails
    algorithm_2: z = 0 at t = 2 too (i > 1, the paper's "t > 1" put on the 0-based i): fails
    algorithm_2: eps_theta given the 1-based t, i + 1: fails
    algorithm_2: 1/sqrt(alpha_bar_t) in place of 1/sqrt(alpha_t): fails
    algorithm_2: beta_t / (1 - alpha_bar_t), the sqrt forgotten: fails
    algorithm_2: the loop one short, range(T - 1), starting at t = T - 1: fails
    sample: sigma_t^2 = beta~_t where variance="beta" asks for beta_t: fails
    sample: no noise on the step to x_1 either (z = 0 when t_prev > 0, not >= 0): fails
    sample: the chain ends at index 0 (t = 1) instead of x_0 (ts[1:] + [0], not + [-1]): fails
    sample: eps_theta given t + 1: fails
    sample: x0_hat = (x_t - (1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), the sqrt forgotten: fails
    posterior: alpha_bar_{t-1} read one index early (alpha_bar_prev[t_prev]): fails
    posterior: c_t with (1 - beta_t) for sqrt(alpha_t) = sqrt(1 - beta_t): fails
    """
    torch.manual_seed(0)
    m = DDPM(8, 1, **TINY, T=20).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.05)
    torch.manual_seed(1)
    want = m.algorithm_2(6)
    torch.manual_seed(1)
    got = m.sample(6, sampler="ddpm", steps=m.T, eta=0.0, guidance=1.0, variance="beta",
                   init=None, mask=None, clip=False)
    assert torch.allclose(got, want.clamp(-1, 1), atol=1e-5)   # sample() clamps to [-1, 1]:
    assert (want.abs() < 1).float().mean() > 0.4               # most are compared as they are


def test_posterior_coefficients_are_exact_at_t_1():
    """At t = 1, alpha_bar_0 = 1: q(x_0 | x_1, x_0) puts all weight on x_0, so the mean is x_0
    itself and the variance 0. The float64 coefficients give exactly that (float32 ones weigh x_0
    by 0.99983)."""
    m = DDPM(8, 1, **TINY)
    x0, x_t = torch.randn(2, 4, 1, 8, 8)
    mean, var = m.posterior(x0, x_t, torch.zeros(4, dtype=torch.long))
    assert torch.equal(mean, x0) and torch.equal(var, torch.zeros_like(var))


def test_guidance_mixes_the_two_predictions_in_one_call():
    m = DDPM(8, 1, num_classes=3, **TINY)
    calls = []

    def eps_theta(x_t, t, y):                 # a prediction that depends on y: e_c -> c + 1, 0 -> 0
        calls.append(len(y))
        y = torch.nn.functional.one_hot(y, 3).float() if y.dim() == 1 else y
        return x_t * 0 + (y @ torch.tensor([1.0, 2.0, 3.0])).view(-1, 1, 1, 1)
    m.eps_theta = eps_theta
    x, t, y = torch.zeros(4, 1, 8, 8), torch.full((4,), 10), torch.tensor([0, 1, 2, 1])
    assert torch.equal(m.guided_eps(x, t, y, 1.0), eps_theta(x, t, y))       # w = 1: conditional
    assert torch.equal(m.guided_eps(x, t, y, 0.0), torch.zeros_like(x))     # w = 0: the null, zeros
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
    dropped = (seen[0] == 0).all(1)                                      # the null: the zero vector
    assert dropped.float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert torch.equal(seen[0][~dropped], torch.eye(5)[y[~dropped]])      # the others: one-hot e_y


def test_img2img_and_inpainting():
    torch.manual_seed(0)
    m = DDPM(8, 1, **TINY).eval()
    init = torch.rand(1, 1, 8, 8) * 2 - 1
    untouched = m.sample(2, init=init, strength=0.0)                      # nothing to undo
    assert torch.equal(untouched, init.expand(2, -1, -1, -1))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1                                                         # keep the left half
    x = m.sample(2, init=init, mask=mask, sampler="ddim", steps=10)
    assert torch.allclose(x[..., :4], init[..., :4].expand(2, -1, -1, -1))
    assert not torch.allclose(x[..., 4:], init[..., 4:].expand(2, -1, -1, -1), atol=0.1)


def test_the_schedule_by_hand():
    """1. beta_t linear from beta_1 to beta_T, both ends included, T of them; alpha_bar_t the
    product (not the sum) of alpha_s, s <= t; alpha_bar_prev the same one step later, 1 at t = 1;
    the buffer beta~_t is posterior()'s variance. Here beta = 0.1, 0.2, ..., 0.5, worked by hand."""
    m = DDPM(8, 1, **TINY, T=5, beta_1=0.1, beta_T=0.5)
    alpha_bar = torch.tensor([0.9, 0.72, 0.504, 0.3024, 0.1512], dtype=torch.float64)  # 0.9 0.8 ..
    assert torch.allclose(m.beta, torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64))
    assert torch.allclose(m.alpha_bar, alpha_bar)
    assert m.alpha_bar_prev[0] == 1 and torch.allclose(m.alpha_bar_prev[1:], alpha_bar[:4])
    x0, x_t = torch.zeros(2, 5, 1, 1, 1)
    _, var = m.posterior(x0, x_t, torch.arange(5))
    assert torch.allclose(m.beta_tilde.float(), var.flatten())
    assert m.beta_tilde[1].item() == pytest.approx(0.1 / 0.28 * 0.2)             # Eq. 7 at t = 2


def test_algorithm_1_draws_t_uniformly_and_x_t_by_eq_4_and_regresses_the_noise():
    """Lines 3-5 measured through the network's inputs: t uniform on all T indices (the paper's
    1..T); at each t, x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps with eps ~ N(0, I)
    independent across images and across pixels; and the target is that eps: a network that
    knows x_0 and answers (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t) scores 0."""
    torch.manual_seed(0)
    m = DDPM(4, 1, **TINY, T=10)
    x0 = torch.full((20_000, 1, 4, 4), 0.9)
    seen = {}

    def knows_x0(x_t, t, y=None):
        seen.update(x_t=x_t, t=t)
        ab = m.alpha_bar[t].view(-1, 1, 1, 1).float()
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
    m.eps_theta = knows_x0
    assert m.loss(x0)["mse"].item() < 1e-6
    counts = torch.bincount(seen["t"], minlength=m.T)
    assert len(counts) == m.T and counts.min() > 1800 and counts.max() < 2200       # 2000 each
    for i in range(m.T):
        ab = m.alpha_bar[i].item()
        eps = (seen["x_t"][seen["t"] == i] - math.sqrt(ab) * 0.9) / math.sqrt(1 - ab)
        assert abs(eps.mean().item()) < 0.03, i
        assert eps.var(0).mean().item() == pytest.approx(1.0, abs=0.05), i      # across images
        assert eps.flatten(1).var(1).mean().item() == pytest.approx(1.0, abs=0.05), i   # pixels


@pytest.mark.parametrize("gamma", [5.0, 0.5])
def test_min_snr_gamma_weighs_each_image_by_min_snr_over_snr(gamma):
    """min-SNR-gamma (Hang et al., 2023) for eps-prediction: each image's squared error (a mean
    over its pixels) weighted by min(SNR(t), gamma) / SNR(t), SNR(t) = alpha_bar_t /
    (1 - alpha_bar_t), then the mean over the batch; by hand from the t and x_t the network
    sees (x_0 = 0, eps_theta = 0: the error is eps^2 = x_t^2 / (1 - alpha_bar_t)). The noisy
    steps (SNR < gamma) keep weight 1, the nearly clean ones are turned down. Off (None, the
    default) the loss is the plain mean over pixels and images."""
    m = DDPM(2, 1, ch=32, ch_mult=(1,), num_res_blocks=1, attn_res=(), min_snr_gamma=gamma)
    seen = {}

    def eps_theta(x_t, t, y=None):
        seen.update(x_t=x_t, t=t)
        return torch.zeros_like(x_t)
    m.eps_theta = eps_theta
    x0 = torch.zeros(4000, 1, 2, 2)
    for min_snr_gamma in (gamma, None):
        m.min_snr_gamma = min_snr_gamma
        torch.manual_seed(0)
        loss = m.loss(x0)["mse"].item()
        ab = m.alpha_bar[seen["t"]]                                          # float64, (B,)
        err = (seen["x_t"].double() ** 2).mean((1, 2, 3)) / (1 - ab)          # (B,): each image
        snr = ab / (1 - ab)
        w = torch.minimum(snr, torch.full_like(snr, gamma)) / snr
        assert (w[snr <= gamma] == 1).all() and (w[snr > gamma] < 1).all()
        if min_snr_gamma is None:
            assert loss == pytest.approx(err.mean().item(), rel=1e-5)
        else:
            assert loss == pytest.approx((w * err).mean().item(), rel=1e-5)
            assert loss < 0.95 * err.mean().item()                     # clean steps turned down
    assert DDPM(2, 1, ch=32, ch_mult=(1,), attn_res=()).min_snr_gamma is None   # off by default


def test_a_respaced_ddpm_step_uses_the_respaced_beta():
    """On S < T steps the DDPM step from t to t' is Eq. 7 of the respaced chain, whose beta is
    1 - alpha_bar_t / alpha_bar_t', with sigma^2 that beta: the full chain's beta_t would add
    far too little noise. Eq. 7 by hand, in float64, with eps_theta = 0 (x0_hat =
    x_t / sqrt(alpha_bar_t))."""
    m = DDPM(8, 1, **TINY)
    m.eps_theta = lambda x_t, t, y=None: torch.zeros_like(x_t)
    for t, t_prev in ((999, 899), (500, 300), (40, 0)):
        torch.manual_seed(0)
        x_t, z = torch.randn(2, 4, 1, 8, 8).double()                    # x_T, then the step's noise
        ab, ab_prev = m.alpha_bar[t], m.alpha_bar[t_prev]
        beta = 1 - ab / ab_prev
        x0_hat = x_t / ab.sqrt()
        mean = ab_prev.sqrt() * beta / (1 - ab) * x0_hat
        mean = mean + (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab) * x_t
        torch.manual_seed(0)
        got = next(m.reverse(4, None, [t, t_prev], "ddpm", variance="beta", clip=False))
        assert torch.allclose(got.double(), mean + beta.sqrt() * z, atol=1e-5), t


def test_ddim_with_clipping_steps_from_the_clipped_x0_and_its_eps():
    """clip=True in DDIM (eta = 0): x0_hat clamped to [-1, 1], eps taken again from Eq. 4 at the
    clamped x0_hat, then Eq. 12: x_t' = sqrt(alpha_bar_t') x0_hat + sqrt(1 - alpha_bar_t') eps."""
    m = DDPM(8, 1, **TINY)
    m.eps_theta = lambda x_t, t, y=None: torch.zeros_like(x_t)    # x0_hat = x_t / sqrt(alpha_bar_t)
    for t, t_prev in ((999, 899), (500, 300), (40, 0)):
        torch.manual_seed(0)
        x_t = torch.randn(4, 1, 8, 8).double()                          # the x_T that reverse draws
        ab, ab_prev = m.alpha_bar[t], m.alpha_bar[t_prev]
        x0_hat = (x_t / ab.sqrt()).clamp(-1, 1)
        eps = (x_t - ab.sqrt() * x0_hat) / (1 - ab).sqrt()
        torch.manual_seed(0)
        got = next(m.reverse(4, None, [t, t_prev], "ddim", clip=True))
        want = ab_prev.sqrt() * x0_hat + (1 - ab_prev).sqrt() * eps
        assert torch.allclose(got.double(), want, atol=1e-5), t


def test_img2img_starts_from_init_noised_to_the_first_step():
    """SDEdit: x_t = sqrt(alpha_bar_t) init + sqrt(1 - alpha_bar_t) z at t = ts[0], z the noise
    reverse draws as x_T; a DDIM step with eps_theta = 0 then scales it by
    sqrt(alpha_bar_t' / alpha_bar_t). Strength 1 starts from pure noise: init is ignored."""
    m = DDPM(8, 1, **TINY)
    m.eps_theta = lambda x_t, t, y=None: torch.zeros_like(x_t)
    torch.manual_seed(0)
    init = torch.rand(1, 1, 8, 8) * 2 - 1
    for t, t_prev in ((499, 388), (100, 0)):
        torch.manual_seed(1)
        z = torch.randn(4, 1, 8, 8).double()
        torch.manual_seed(1)
        got = next(m.reverse(4, None, [t, t_prev], "ddim", init=init, clip=False))
        ab, ab_prev = m.alpha_bar[t], m.alpha_bar[t_prev]
        x_t = ab.sqrt() * init.double() + (1 - ab).sqrt() * z
        assert torch.allclose(got.double(), (ab_prev / ab).sqrt() * x_t, atol=1e-5), t
    torch.manual_seed(2)
    a = m.sample(2, init=init, strength=1.0, steps=5, sampler="ddim")
    torch.manual_seed(2)
    b = m.sample(2, init=-init, strength=1.0, steps=5, sampler="ddim")
    assert torch.equal(a, b)


def test_inpainting_puts_back_the_known_pixels_noised_to_each_step():
    """Each x_t' the reverse process yields holds, where the mask is white, init noised to t' by
    Eq. 4 (mean sqrt(alpha_bar_t') init, variance 1 - alpha_bar_t'), and at the end init itself;
    where it is black, the sampled pixels."""
    torch.manual_seed(0)
    m = DDPM(8, 1, **TINY)
    m.eps_theta = lambda x_t, t, y=None: torch.zeros_like(x_t)
    init = torch.full((1, 1, 8, 8), 0.8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1                                                         # keep the left half
    ts = m.timesteps(10)
    xs = list(m.reverse(500, None, ts, "ddim", init=init, mask=mask))
    for t_prev, x in zip(ts[1:], xs):
        ab = m.alpha_bar[t_prev].item()
        eps = (x[..., :4] - math.sqrt(ab) * 0.8) / math.sqrt(1 - ab)      # 16,000 draws of N(0, 1)
        assert abs(eps.mean().item()) < 0.04 and eps.var().item() == pytest.approx(1, abs=0.05)
    assert torch.equal(xs[-1][..., :4], init[..., :4].expand(500, -1, -1, -1))
    assert (xs[-1][..., 4:] - 0.8).abs().mean() > 0.1


def test_cifar10_network_size():
    """The DDPM paper's CIFAR-10 network (ch 128, mult 1,2,2,2, 2 blocks, attention at 16x16) has
    35.7M parameters (Ho et al., Appendix B); this implementation's exact count:"""
    m = DDPM(32, 3, ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_res=(16,), dropout=0.1)
    assert sum(p.numel() for p in m.parameters()) == 35_746_307


def test_the_untrained_network_predicts_zero():
    """Ho et al.'s initialisation: each residual branch and the output start at zero, so the
    untrained eps_theta is 0 and L_simple starts at E||eps||^2 / d = 1, whatever the data."""
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
    distance = (yy - centres[:, :1, None]).abs() + (xx - centres[:, 1:, None]).abs()
    data = (distance < 2).float()                                           # small diamonds
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
    assert first > 0.8 and last < 0.15, (first, last)                    # 1.0 is predicting zero


def test_bad_configurations():
    with pytest.raises(ValueError, match="halve"):
        DDPM(20, 3, ch_mult=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="sampler"):
        DDPM(8, 1, **TINY).sample(1, sampler="euler", steps=2)
    assert math.isclose(DDPM(8, 1, **TINY).beta[-1].item(), 0.02, rel_tol=1e-6)


def test_command_line(cli, tmp_path):
    """Train a class-conditional DDPM a few steps on the built-in shapes, resume it, then sample
    with each sampler, guidance, a label, img2img, inpainting and the animation. A 20-step chain
    keeps the sample grids that end each run quick; the samplers' maths is checked above with
    T = 1000."""
    out = tmp_path / "run"
    tiny = ["--image-size", 8, "--T", 20, "--ch", 32, "--ch-mult", "1,2", "--num-res-blocks", 1,
            "--attn-res", "", "--batch-size", 8, "--grid", 2, "--classes", "--log-every", 2]
    r = cli("train.py", "ddpm", "--steps", 4, "--out", out, *tiny)
    assert r.returncode == 0, r.out
    assert "mse" in r.out and "12 classes" in r.out
    r = cli("train.py", "ddpm", "--steps", 6, "--out", out, "--resume")
    assert r.returncode == 0, r.out
    ck = __import__("torch").load(out / "ckpt.pt", weights_only=True)
    assert ck["step"] == 6 and ck["ema"] is not None           # EMA on by default, as in the paper
    from PIL import Image
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "init.png")
    mask = Image.new("L", (8, 8), 0)
    mask.paste(255, (0, 0, 4, 8))
    mask.save(tmp_path / "mask.png")
    ckpt = out / "ckpt.pt"
    init = tmp_path / "init.png"
    mask = tmp_path / "mask.png"
    for knobs in (["--sampler", "ddim", "--steps", 5],
                  ["--steps", 5, "--variance", "posterior"],
                  ["--sampler", "ddim", "--steps", 5, "--guidance", 3, "--label", "red circle"],
                  ["--steps", 5, "--init", init, "--strength", 0.5],
                  ["--sampler", "ddim", "--steps", 5, "--init", init, "--mask", mask]):
        r = cli("sample.py", ckpt, "-n", 3, "--out", tmp_path / "s.png", *knobs)
        assert r.returncode == 0 and "wrote" in r.out, (knobs, r.out)
    r = cli("sample.py", ckpt, "-n", 2, "--gif", "--steps", 10, "--frames", 5,
            "--out", tmp_path / "d.png")
    assert r.returncode == 0, r.out
    assert (tmp_path / "d.gif").exists() and (tmp_path / "d_strip.png").exists(), r.out
    r = cli("sample.py", ckpt, "--sampler", "euler")
    assert r.returncode == 1 and "sampler is ddpm or ddim" in r.out


def test_multiplicative_conditioning_is_h_times_1_plus_gamma_c_then_the_step():
    """cond="multiply" (the lab report's U-Net): a ResBlock reads emb = [step | c] and computes
    h (1 + gamma(c)) + W_e SiLU(step) after its first conv, by hand here; the default stays the
    additive embedding, with no gamma anywhere."""
    from ddpm import ResBlock
    torch.manual_seed(0)
    block = ResBlock(32, 32, 16, 0.0, "multiply")
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 32, 4, 4)
    step, c = torch.randn(2, 16), torch.randn(2, 16)
    h = block.conv1(torch.nn.functional.silu(block.norm1(x)))
    h = h * (1 + block.gamma(c)[:, :, None, None]) + block.emb(torch.nn.functional.silu(step))[
        :, :, None, None]
    h = block.conv2(torch.nn.functional.silu(block.norm2(h)))
    assert torch.allclose(block(x, torch.cat([step, c], 1)), x + h, atol=1e-5)
    plain = DDPM(8, 1, num_classes=3, **TINY)
    assert plain.net.cond == "add"
    assert not any("gamma" in name for name, _ in plain.named_parameters())
    with pytest.raises(ValueError, match="add or multiply"):
        DDPM(8, 1, num_classes=3, cond="multiple", **TINY)


def test_multiplicative_conditioning_reads_y_only_through_gamma():
    """With cond="multiply" the output changes with y; with every gamma zeroed it cannot (the
    condition is not also added to the step's embedding); y = 0 and no y are the same null."""
    torch.manual_seed(0)
    m = DDPM(8, 1, num_classes=3, cond="multiply", **TINY)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(3, 1, 8, 8)
    t = torch.tensor([5, 500, 900])
    y = torch.tensor([0, 1, 2])
    with torch.no_grad():
        out = m.eps_theta(x, t, y)
        assert (out - m.eps_theta(x, t, (y + 1) % 3)).abs().max() > 0.1 * out.abs().mean()
        assert torch.allclose(m.eps_theta(x, t, None), m.eps_theta(x, t, torch.zeros(3, 3)))
        for name, p in m.named_parameters():
            if "gamma" in name:
                p.zero_()
        assert torch.allclose(m.eps_theta(x, t, y), m.eps_theta(x, t, (y + 1) % 3))


def test_multiplicative_conditioning_trains_through_train_py(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("train.py", "ddpm", "--cond", "multiply", "--classes", "--steps", 2, "--out", out,
            "--image-size", 8, "--T", 10, "--ch", 32, "--ch-mult", "1,2", "--num-res-blocks", 1,
            "--attn-res", "", "--batch-size", 8, "--grid", 1)
    assert r.returncode == 0, r.out
    ck = torch.load(out / "ckpt.pt", weights_only=True)
    assert ck["config"]["cond"] == "multiply"
    assert any("gamma" in k for k in ck["weights"])

"""vae.py: the equations (KL, beta, reparameterization, Gaussian reconstruction term), the
decoder's range, the condition's embedding, the prior at sampling, and learning."""
import math
import pytest
import torch
from torch.distributions import Normal, kl_divergence
from support.data import shapes
from vae import VAE


def with_fixed_posterior(model, mu, logvar, x_hat):
    """Make encode return (mu, logvar) and decode return x_hat, to isolate the loss terms."""
    model.encode = lambda x, y=None: (mu, logvar)
    model.decode = lambda z, y=None: x_hat
    return model


def test_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    model = with_fixed_posterior(VAE(8, 1, z_dim=3), mu, logvar, x)      # decoder exact: recon = 0
    kl = model.loss(x)["kl"]
    # E_q[log q(z|x) - log p(z)] with z ~ q, summed over dimensions, averaged over the batch
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    z = q.sample((200_000,))
    p = torch.distributions.Normal(0.0, 1.0)
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean()
    assert kl.item() == pytest.approx(mc.item(), rel=0.02)


def test_recon_is_gaussian_negative_log_likelihood():
    torch.manual_seed(0)
    x, x_hat = torch.rand(5, 3, 8, 8) * 2 - 1, torch.rand(5, 3, 8, 8) * 2 - 1
    mu = logvar = torch.zeros(5, 32)
    model = with_fixed_posterior(VAE(8, 3, sigma=0.3), mu, logvar, x_hat)
    nll = -torch.distributions.Normal(x_hat, 0.3).log_prob(x).sum((1, 2, 3)).mean()
    const = 0.5 * math.log(2 * math.pi * 0.3**2) * 3 * 8 * 8                  # the dropped constant
    assert model.loss(x)["recon"].item() == pytest.approx(nll.item() - const, rel=1e-4)


def test_reparameterization_passes_gradients_to_mu_and_sigma():
    torch.manual_seed(0)
    mu = torch.randn(100_000, 2, requires_grad=True)
    logvar = torch.full((100_000, 2), math.log(4.0), requires_grad=True)      # sigma = 2
    z = VAE(8, 1).reparameterize(mu, logvar)
    eps = (z - mu) / 2
    assert eps.mean().abs() < 0.01 and (eps.std() - 1).abs() < 0.01          # z ~ N(mu, sigma^2)
    assert (eps[1:] * eps[:-1]).mean().abs() < 0.01               # a fresh eps for each image
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu))                       # dz/dmu = 1
    assert torch.allclose(logvar.grad, 0.5 * 2 * eps.detach(), atol=1e-5)  # dz/dlogvar: sigma eps/2


def test_kl_term_is_weighted_by_beta():
    """L = recon + beta * KL: the term is beta times the closed form of
    KL(N(mu, sigma^2) || N(0, 1)), summed over z's dimensions, averaged over the batch."""
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    model = with_fixed_posterior(VAE(8, 1, z_dim=3, beta=4.0), mu, logvar, x)
    kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1).mean()
    assert model.loss(x)["kl"].item() == pytest.approx(4.0 * kl.item(), rel=1e-5)


def test_recon_scores_a_sample_of_q_not_its_mean():
    """x = 0 and a decoder that returns z itself: recon = ||z||^2 / (2 s^2), whose expectation under
    z ~ q = N(mu, sigma^2) is (||mu||^2 + sum sigma^2) / (2 s^2), here 64 (0.25 + 4) / 2 = 136.
    Decoding mu alone would give 8."""
    torch.manual_seed(0)
    n = 20_000
    mu = torch.full((n, 64), 0.5)
    logvar = torch.full((n, 64), math.log(4.0))                                # sigma = 2
    model = VAE(8, 1, z_dim=64, sigma=1.0)
    model.encode = lambda x, y=None: (mu, logvar)
    model.decode = lambda z, y=None: z.view(-1, 1, 8, 8)
    recon = model.loss(torch.zeros(n, 1, 8, 8))["recon"]
    assert recon.item() == pytest.approx(64 * (0.5**2 + 4.0) / 2, rel=0.01)   # std of it: 0.2


def test_decoder_spans_the_data_range():
    """The data lie in [-1, 1] and so must x_hat: pushed hard either way, the decoder's output goes
    to -1 and to +1, and sits at 0 in between (a sigmoid would stop at 0 and 1/2, a bare conv
    overshoot)."""
    model = VAE(8, 1).eval()
    last = model.decoder[-2]                                                   # the last conv
    torch.nn.init.zeros_(last.weight)
    z = torch.randn(4, 32)
    for bias, end in [(-20.0, -1.0), (0.0, 0.0), (20.0, 1.0)]:
        torch.nn.init.constant_(last.bias, bias)
        x_hat = model.decode(z)
        assert torch.allclose(x_hat, torch.full_like(x_hat, end), atol=1e-4), (bias, x_hat.mean())


def test_condition_appends_the_labels_rows():
    """CVAE: the condition y W appended to h. A class id c is W's row c; a set of labels
    (multi-hot) is the sum of its rows."""
    model = VAE(8, 1, num_classes=5)
    W = model.embed.weight
    h = torch.randn(2, 3)
    got = model.condition(h, torch.tensor([2, 4]))
    assert torch.equal(got[:, :3], h) and torch.allclose(got[:, 3:], W[[2, 4]])
    got = model.condition(h, torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 0, 1]]))
    assert torch.allclose(got[:, 3:], torch.stack([W[0] + W[2], W[4]]))


def test_sample_draws_z_from_the_prior_at_the_temperature():
    """Step 6: z ~ N(0, T^2 I): mean 0, std T, and N's tails, P(|z| > 2T) = 0.0455."""
    torch.manual_seed(0)
    model = VAE(8, 1, z_dim=4)
    model.decode = lambda z, y=None: z                                         # sample returns z
    for T in (1.0, 0.5):
        z = model.sample(50_000, temperature=T)
        assert z.mean().abs() < 0.01 and z.std().item() == pytest.approx(T, rel=0.01)
        assert (z.abs() > 2 * T).float().mean().item() == pytest.approx(0.0455, abs=0.003)


def test_conditional_decoder_uses_the_label():
    torch.manual_seed(0)
    model = VAE(16, 3, num_classes=5).eval()
    z = torch.randn(2, 32)
    a = model.decode(z, torch.tensor([0, 0]))
    b = model.decode(z, torch.tensor([3, 3]))
    assert (a - b).abs().mean() > 1e-3
    assert model.sample(10).shape == (10, 3, 16, 16)
    loss = model.loss(torch.rand(4, 3, 16, 16) * 2 - 1, torch.tensor([0, 1, 2, 4]))
    assert set(loss) == {"recon", "kl"} and all(torch.isfinite(v) for v in loss.values())


def test_image_size_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        VAE(28, 1)


def test_learns_the_shapes():
    """A few hundred steps: reconstructions get much better and samples are not all alike."""
    torch.manual_seed(0)
    images, _, _ = shapes(n=2000, size=16, seed=0)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1      # (N, 3, 16, 16)
    model = VAE(16, 3, z_dim=16, ch=16)
    opt = model.configure_optimizers()
    held_out = data[:256]

    def recon_error():
        model.eval()
        with torch.no_grad():
            mu, _ = model.encode(held_out)
            err = ((model.decode(mu) - held_out) ** 2).mean().item()
        model.train()
        return err

    before = recon_error()
    for step in range(300):
        x = data[256 + torch.randint(0, len(data) - 256, (64,))]
        loss = sum(model.loss(x).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = recon_error()
    assert after < 0.2 * before, (before, after)
    model.eval()
    samples = model.sample(32)
    assert samples.shape == (32, 3, 16, 16) and samples.min() >= -1 and samples.max() <= 1
    assert samples.std(0).mean() > 0.05                        # samples differ from each other

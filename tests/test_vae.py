"""vae.py: the equations (KL, reparameterization, Gaussian reconstruction term) and learning."""
import math
import pytest
import torch
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
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu))                       # dz/dmu = 1
    assert torch.allclose(logvar.grad, 0.5 * 2 * eps.detach(), atol=1e-5)  # dz/dlogvar: sigma eps/2


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

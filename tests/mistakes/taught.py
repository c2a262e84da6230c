"""The ten mistakes docs/mistakes.md measures: each trained for a few hundred steps on
Fashion-MNIST beside the right code (`python -m tests.mistakes._symptoms`), its picture and loss
figures on the page. Listed here, not in the lists of their files, so each is run once."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("vae.py", "the reconstruction error averaged over the pixels instead of summed",
            "se = ((x - x_hat) ** 2).sum((1, 2, 3))",
            "se = ((x - x_hat) ** 2).mean((1, 2, 3))",
            shows="the reconstruction weighs 1/(C H W) of what it should (1/256 at 16x16), so "
                  "the KL term wins: the posterior collapses to the prior (KL near 0) and "
                  "every sample is the same blurred average item"),
    Mistake("vae.py", "the decoder fed mu, skipping the reparameterization z = mu + sigma * eps",
            "z = self.reparameterize(mu, logvar)",
            "z = mu",
            shows="the decoder learns only the points mu, never the noise of q(z | x), and "
                  "the KL term squeezes them together at no cost: samples from the prior "
                  "N(0, I) are broken, speckled shapes"),
    Mistake("gan.py", "D's targets swapped: real images labelled 0, fakes 1",
            "return torch.where(real, 1 - u, u).split(n)",
            "return torch.where(real, u, 1 - u).split(n)",
            tests="tests/test_gan.py tests/test_pix2pix.py",
            shows="D calls the data fake and G is rewarded for looking unlike it: G's loss "
                  "falls to 0, D(G(z)) to 1, and every sample is the same bright, inverted "
                  "pattern"),
    Mistake("gan.py", "G's loss computed on detached fakes",
            "self.g_terms(self.logits(self.fakes(), self.y))",
            "self.g_terms(self.logits(self.fakes().detach(), self.y))",
            shows="no gradient reaches G: D wins (D(G(z)) near 0, G's loss climbing past 10) "
                  "and the samples stay the untrained G's flat grey noise"),
    Mistake("gan.py", "WGAN's critic loss with the sign of E[f(x)] flipped",
            'return {"real": -real_f.float().mean(),',
            'return {"real": real_f.float().mean(),',
            tests="tests/test_gan.py tests/test_dcgan.py",
            shows="the critic pushes every score down, real and fake alike, and measures no "
                  "distance: its gradient penalty climbs to 93 (right: 2), G gets no useful "
                  "signal and the samples stay noise"),
    Mistake("dcgan.py", "G's target set to 0 (fake), not 1 (real)",
            "target = torch.ones_like(fake_logit)",
            "target = torch.zeros_like(fake_logit)",
            shows="G helps D tell its samples apart: every loss falls to 0 as if training "
                  "were done (D(G(z)) 0.0002) while the samples are a grey checkerboard"),
    Mistake("dcgan.py", "G's output layer a Sigmoid, images in [0, 1] instead of [-1, 1]",
            "nn.Tanh())",
            "nn.Sigmoid())",
            shows="G cannot reach the dark half of the range: backgrounds mid-grey, never "
                  "black, and D tells fakes by their brightness alone (D(G(z)) 0.003, G's "
                  "loss 6 against 1.8)"),
    Mistake("ddpm.py", "the network trained to predict x_0 instead of the noise eps",
            'return {"mse": F.mse_loss(self.eps_theta(x_t, t, y), eps)}',
            'return {"mse": F.mse_loss(self.eps_theta(x_t, t, y), x_0)}',
            shows="the loss stays 4 times the right one's (0.22 against 0.049 at step 300), "
                  "and the sampler, reading the output as eps, ends in saturated black and "
                  "white noise, no items"),
    Mistake("ddpm.py", "x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / alpha_bar_t, its square "
                       "root dropped",
            "x0_hat = (x - (1 - ab).sqrt() * eps) / ab.sqrt()",
            "x0_hat = (x - (1 - ab).sqrt() * eps) / ab",
            shows="the training is untouched (the same loss), the sampler over-scales x0_hat "
                  "and the clip to [-1, 1] hides most of it: faint items vanish into black, "
                  "the rest turn harsher (pixel std 0.40 against 0.34), easy to miss by eye"),
    Mistake("support/data.py", "images loaded in [0, 1] (x / 255), not [-1, 1]",
            "float() / 127.5 - 1",
            "float() / 255",
            shows="every model learns images in [0, 1], which the grids show as [-1, 1]: "
                  "black backgrounds come out mid-grey, the contrast halved (pixel mean 0.61 "
                  "against 0.26)"),
]

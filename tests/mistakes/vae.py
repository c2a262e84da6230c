"""vae.py's mistakes: the reparameterization, the closed-form KL and its weight beta, the Gaussian
reconstruction term, the decoder's range, the condition's embedding, the prior at sampling. Two
more are in taught.py (docs/mistakes.md measures them): the squared error averaged over pixels,
the decoder fed mu instead of z."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("vae.py", "the KL term with its sign flipped",
            "kl = -0.5 * (1 + logvar - mu**2 - logvar.exp())",
            "kl = 0.5 * (1 + logvar - mu**2 - logvar.exp())",
            shows="the KL term is rewarded: mu and logvar run away, the loss falls below zero"),
    Mistake("vae.py", "sigma taken as exp(logvar), not exp(logvar / 2)",
            "return mu + (0.5 * logvar).exp() * eps",
            "return mu + logvar.exp() * eps",
            shows="samples blurrier; logvar settles at half its right value"),
    Mistake("vae.py", "the KL's 1/2 dropped",
            "-0.5 * (1 + logvar",
            "-(1 + logvar",
            shows="KL weighs twice what the ELBO says: a beta-VAE with beta = 2 by accident, "
                  "blurrier reconstructions"),
    Mistake("vae.py", "the KL averaged over z's dimensions instead of summed",
            "(1 + logvar - mu**2 - logvar.exp()).sum(1)",
            "(1 + logvar - mu**2 - logvar.exp()).mean(1)",
            shows="KL shrunk by z_dim against a recon summed over pixels: sharp reconstructions, "
                  "but the posterior strays from the prior and samples from N(0, I) are poor"),
    Mistake("vae.py", "the KL summed over the batch while recon is averaged",
            "logvar.exp()).sum(1).mean()",
            "logvar.exp()).sum()",
            shows="KL weighs batch-size times too much: posterior collapse, every reconstruction "
                  "the same grey average image"),
    Mistake("vae.py", "sigma where sigma^2 is meant in the KL",
            "- mu**2 - logvar.exp())",
            "- mu**2 - (0.5 * logvar).exp())",
            shows="the KL's minimum moves off sigma = 1: the posterior's variance settles "
                  "wrong and samples from the prior no longer match the data"),
    Mistake("vae.py", "mu and logvar swapped at the call of reparameterize",
            "self.reparameterize(mu, logvar)",
            "self.reparameterize(logvar, mu)",
            shows="z's mean is the network's logvar and its spread exp(mu / 2): the KL "
                  "penalises the wrong quantities, reconstructions and samples blurred"),
    Mistake("vae.py", "one eps drawn for the whole batch, not one per image",
            "eps = torch.randn_like(mu)",
            "eps = torch.randn_like(mu[0])",
            shows="every image of a batch gets the same noise: the gradient's estimate is "
                  "correlated across the batch, training noisier"),
    Mistake("vae.py", "eps drawn from U(0, 1) (rand) instead of N(0, I) (randn)",
            "torch.randn_like(mu)",
            "torch.rand_like(mu)",
            shows="z is shifted by sigma / 2 and too narrow (std sigma / sqrt(12)); sampling "
                  "from N(0, I) lands where the decoder never trained: odd samples"),
    Mistake("vae.py", "the reconstruction's 1/2 dropped: ||x - x_hat||^2 / s^2",
            "se.mean() / (2 * self.sigma**2)",
            "se.mean() / self.sigma**2",
            shows="recon weighs twice the ELBO's: beta halved, sharper reconstructions, "
                  "worse samples"),
    Mistake("vae.py", "s where s^2 is meant in the reconstruction's 1/(2 s^2)",
            "(2 * self.sigma**2)",
            "(2 * self.sigma)",
            shows="the --sigma flag has the wrong effect: s = 0.5 weighs recon 1 instead of 2"),
    Mistake("vae.py", "the squared error summed over the batch, not averaged",
            "recon = se.mean()",
            "recon = se.sum()",
            shows="recon and its gradients scale with the batch size: the KL nearly ignored, "
                  "a larger batch changes the model"),
    Mistake("vae.py", "the KL's beta dropped",
            '"kl": self.beta * kl',
            '"kl": kl',
            shows="--beta does nothing: a beta-VAE trains as the plain VAE"),
    Mistake("vae.py", "a sigmoid at the decoder's output for data in [-1, 1]",
            "out, nn.Tanh())",
            "out, nn.Sigmoid())",
            shows="x_hat cannot go below 0: everything dark comes out mid-grey, "
                  "the recon loss stalls high"),
    Mistake("vae.py", "the condition looked up as an index, which a set of labels is not",
            "self.onehot(y) @ self.embed.weight",
            "self.embed(y)",
            shows="class ids work; multi-hot labels (the lab's i-CLEVR sets) crash or are "
                  "read as indices"),
    Mistake("vae.py", "one_hot without the number of classes",
            "F.one_hot(y, self.num_classes)",
            "F.one_hot(y)",
            shows="a batch without the last class yields a narrower one-hot: a shape error at "
                  "random steps"),
    Mistake("vae.py", "z at sampling drawn from U(0, 1) instead of the prior N(0, I)",
            "temperature * torch.randn(n, self.z_dim",
            "temperature * torch.rand(n, self.z_dim",
            shows="samples all alike, from one corner of latent space, however well it trained"),
]

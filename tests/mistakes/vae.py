"""vae.py's mistakes: the reparameterization, the closed-form KL, the reconstruction term."""
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
]

"""measure/gan_gradient.py's mistakes: the minimax G loss and its push, D's targets, the
critic's sides and its penalty."""
from tests.mistakes import Mistake

F = "measure/gan_gradient.py"

MISTAKES = [
    Mistake(F, "the minimax G loss written log D(x): the non-saturating one",
            "g_loss = F.logsigmoid(-logit).sum()",
            "g_loss = F.logsigmoid(logit).sum()",
            shows="the figure shows a strong push on p_g: the saturation it is meant to show is "
                  "gone"),
    Mistake(F, "the push taken up G's loss instead of down it",
            "push_d, = torch.autograd.grad(-g_loss, x)",
            "push_d, = torch.autograd.grad(g_loss, x)",
            shows="the minimax curve points away from the data"),
    Mistake(F, "D's BCE targets swapped: 1 for the fakes",
            "t = bce_terms(D(x), D(fake), torch.ones(n, 1), torch.zeros(n, 1))",
            "t = bce_terms(D(x), D(fake), torch.zeros(n, 1), torch.ones(n, 1))",
            shows="D learns to accept p_g and reject p_data"),
    Mistake(F, "the critic's real and fake scores swapped",
            "t = critic_loss(f(x), f(fake))",
            "t = critic_loss(f(fake), f(x))",
            shows="the critic scores the fakes higher: WGAN's push points away from the data"),
    Mistake(F, "the gradient penalty left out of the critic's step",
            'return t["real"] + t["fake"] + gp_lambda * gradient_penalty(f, x, fake)',
            'return t["real"] + t["fake"]',
            shows="an unbounded critic: f's slope grows without limit instead of near 1"),
]

"""ddpm.py's mistakes: the schedule, Algorithm 1, Algorithm 2 and the full sampler (DDPM and DDIM
steps, x0_hat's clip, guidance), img2img and inpainting. Two more are in taught.py."""
from tests.mistakes import Mistake

MISTAKES = [
    # -------------------------------------------------------------- 1. the schedule
    Mistake("ddpm.py", "alpha_bar_t as the sum of the alphas, not their product",
            "alpha_bar = torch.cumprod(alpha, 0)",
            "alpha_bar = torch.cumsum(alpha, 0)",
            shows="alpha_bar_t passes 1 at t = 2, so sqrt(1 - alpha_bar_t) is NaN: the loss is "
                  "NaN from the first step and train.py stops"),
    Mistake("ddpm.py", "T + 1 betas with the first dropped, so beta_1 is not the first step's",
            "beta = torch.linspace(beta_1, beta_T, T, dtype=torch.float64)",
            "beta = torch.linspace(beta_1, beta_T, T + 1, dtype=torch.float64)[1:]",
            shows="barely visible: every beta a little larger, the first step noisier than the "
                  "paper's, samples a touch grainier"),
    Mistake("ddpm.py", "alpha_bar_prev padded on the wrong side: alpha_bar_{t-1} is alpha_bar_t",
            "F.pad(alpha_bar[:-1], (1, 0), value=1.0)",
            "F.pad(alpha_bar[1:], (0, 1), value=1.0)",
            shows="training untouched; the sampler's step beta, 1 - alpha_bar_t / "
                  "alpha_bar_{t-1}, is negative, its square root NaN: NaN samples"),
    # -------------------------------------------------------------- 2, 3. Algorithm 1
    Mistake("ddpm.py", "t drawn from 1..T-1 as an index, so the step t = 1 is never trained",
            "t = torch.randint(0, self.T, (len(x_0),), device=x_0.device)",
            "t = torch.randint(1, self.T, (len(x_0),), device=x_0.device)",
            shows="the last denoising step was never seen: samples keep a faint grain of noise"),
    Mistake("ddpm.py", "x_0 and the noise swapped where Algorithm 1 calls q_sample",
            "x_t = self.q_sample(x_0, t, eps)",
            "x_t = self.q_sample(eps, t, x_0)",
            shows="the network learns to denoise noise into data backwards: near t = T its "
                  "input is the image, and the samples are grey noise"),
    Mistake("ddpm.py", "q(x_t | x_0)'s mean taken as alpha_bar_t x_0, its square root dropped",
            "return ab.sqrt().float() * x_0 + (1 - ab).sqrt().float() * eps",
            "return ab.float() * x_0 + (1 - ab).sqrt().float() * eps",
            shows="the network learns a noisier process than the one the sampler runs: "
                  "samples off in brightness and contrast"),
    Mistake("ddpm.py", "one noise value per image, not per pixel: eps of shape (B, 1, 1, 1)",
            "eps = torch.randn_like(x_0)",
            "eps = torch.randn(len(x_0), 1, 1, 1, device=x_0.device)",
            shows="the network only learns to remove a uniform shift: sampled pixels stay "
                  "independent noise, never an image"),
    Mistake("ddpm.py", "the condition dropped when rand > p_uncond: 90% of the time, not 10%",
            "drop = torch.rand(len(y), device=y.device) < self.p_uncond",
            "drop = torch.rand(len(y), device=y.device) > self.p_uncond",
            shows="the conditional model is barely trained: samples ignore their label, and "
                  "guidance amplifies noise"),
    # -------------------------------------------------------------- 3. min-SNR-gamma
    Mistake("ddpm.py", "min-SNR's weight inverted: SNR / min(SNR, gamma), not min / SNR",
            "w = snr.clamp(max=self.min_snr_gamma) / snr",
            "w = snr / snr.clamp(max=self.min_snr_gamma)",
            shows="(predicted) the nearly clean steps weighted up to SNR / gamma, thousands near "
                  "t = 1: the loss is dominated by the steps that matter least, samples noisy"),
    Mistake("ddpm.py", "min-SNR's clamp from below: max(SNR, gamma) / SNR",
            "snr.clamp(max=self.min_snr_gamma)",
            "snr.clamp(min=self.min_snr_gamma)",
            shows="(predicted) the clean steps keep weight 1 and the noisy ones (SNR < gamma) "
                  "are weighted up, by 200,000 near t = T: the loss explodes"),
    Mistake("ddpm.py", "SNR(t) taken as (1 - alpha_bar_t) / alpha_bar_t, the noise-to-signal",
            "snr = self.alpha_bar[t] / (1 - self.alpha_bar[t])",
            "snr = (1 - self.alpha_bar[t]) / self.alpha_bar[t]",
            shows="(predicted) the weighting runs backwards: the noisy steps turned down, the "
                  "clean ones kept, which is the opposite of Hang et al.'s point"),
    Mistake("ddpm.py", "min-SNR's gamma fixed at the paper's 5, --min-snr-gamma ignored",
            "(max=self.min_snr_gamma)",
            "(max=5.0)",
            shows="(predicted) every gamma trains as 5: the flag changes nothing"),
    Mistake("ddpm.py", "min-SNR's error a mean over the whole batch, not one per image",
            ".pow(2).mean(dim=(1, 2, 3))",
            ".pow(2).mean()",
            shows="(predicted) each image's weight no longer meets its own error: the loss is "
                  "mean(w) times the plain loss, a smaller learning rate and no re-weighting"),
    # -------------------------------------------------------------- 5. Algorithm 2
    Mistake("ddpm.py", "Algorithm 2 divides by sqrt(alpha_bar_t) where the paper has sqrt(alpha_t)",
            "* eps) / alpha.sqrt()",
            "* eps) / ab.sqrt()\n",
            shows="each step scales x up by 1 / sqrt(alpha_bar_{t-1}): samples explode to "
                  "saturated black and white"),
    Mistake("ddpm.py", "Algorithm 2's noise weight beta_t / (1 - alpha_bar_t), its sqrt dropped",
            "beta / (1 - ab).sqrt() * eps",
            "beta / (1 - ab) * eps",
            shows="too much of eps removed at the last steps: samples over-sharpened, with "
                  "noise burnt into high contrast"),
    Mistake("ddpm.py", "Algorithm 2's sigma_t z with sigma_t = beta_t, not sqrt(beta_t)",
            "x = mean + beta.sqrt() * z",
            "x = mean + beta * z",
            shows="almost no noise injected: samples smooth, blurry and alike"),
    Mistake("ddpm.py", "Algorithm 2 adds noise at the last step too (z ~ N(0, I) at t = 1)",
            "z = torch.randn_like(x) if i > 0 else torch.zeros_like(x)",
            "z = torch.randn_like(x) if i >= 0 else torch.zeros_like(x)",
            shows="a faint sqrt(beta_1) grain left on every final sample"),
    # -------------------------------------------------------------- the full sampler
    Mistake("ddpm.py", "the step to x_1 also taken without noise (z = 0 when t' > 0, not >= 0)",
            "z = torch.randn_like(x) if t_prev >= 0 else torch.zeros_like(x)",
            "z = torch.randn_like(x) if t_prev > 0 else torch.zeros_like(x)",
            shows="hardly visible at 1000 steps; on 10 steps the last two are deterministic "
                  "and the samples slightly smoother"),
    Mistake("ddpm.py", "variance=\"beta\" and \"posterior\" swapped in the DDPM step",
            'sigma2 = beta_tilde if variance == "posterior" else',
            'sigma2 = beta_tilde if variance == "beta" else',
            shows="the two variances' FID columns trade places; on few steps the 'beta' "
                  "samples come out too smooth"),
    Mistake("ddpm.py", "a respaced DDPM step adds the full chain's beta_t, not the respaced beta",
            "beta = (1 - ab / ab_prev).float()",
            "beta = self.beta[t].float()",
            shows="on 50 steps far too little noise: samples smooth, cartoonish, alike"),
    Mistake("ddpm.py", "posterior's c_t with (1 - beta_t) where Eq. 7 has sqrt(alpha_t)",
            "c_t = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)",
            "c_t = (1 - beta) * (1 - ab_prev) / (1 - ab)",
            shows="x_t shrinks a little at each step: samples darkened towards grey"),
    Mistake("ddpm.py", "timesteps start at index T (t = T + 1), one past the schedule",
            "torch.linspace(start - 1, 0, min(steps, start))",
            "torch.linspace(start, 0, min(steps, start))",
            shows="IndexError on the first step of every full-length sampling"),
    # -------------------------------------------------------------- 6. DDIM, the clip
    Mistake("ddpm.py", "DDIM's direction term sqrt(1 - alpha_bar_t') eps, sigma^2 left out of it",
            "(1 - ab_prev - sigma**2).sqrt() * eps",
            "(1 - ab_prev).sqrt() * eps",
            shows="eta = 0 unchanged; with eta > 0 the variance is too large: noisy samples"),
    Mistake("ddpm.py", "DDIM's sigma = eta beta~_t, not eta sqrt(beta~_t)",
            "sigma = eta * beta_tilde.sqrt()",
            "sigma = eta * beta_tilde",
            shows="eta = 1 adds far too little noise: it no longer matches DDPM's samples"),
    Mistake("ddpm.py", "DDIM's x0_hat term weighted by sqrt(alpha_bar_t), not sqrt(alpha_bar_t')",
            "x = ab_prev.sqrt() * x0_hat + (1 - ab_prev - sigma**2).sqrt() * eps",
            "x = ab.sqrt() * x0_hat + (1 - ab_prev - sigma**2).sqrt() * eps",
            shows="the signal never grows back: DDIM's samples are faint noise"),
    Mistake("ddpm.py", "after the clip, eps taken again with 1 - alpha_bar_t, its sqrt dropped",
            "eps = (x - ab.sqrt() * x0_hat) / (1 - ab).sqrt()",
            "eps = (x - ab.sqrt() * x0_hat) / (1 - ab)",
            shows="DDPM's samples unchanged, DDIM's (which reads eps) noisy near t = 1"),
    # -------------------------------------------------------------- 7. guidance
    Mistake("ddpm.py", "guidance written (1 + s) eps_cond - s eps_uncond with the scale s",
            "return e_uncond + guidance * (e_cond - e_uncond)",
            "return (1 + guidance) * e_cond - guidance * e_uncond",
            shows="every scale one stronger than asked: --guidance 0 is not unconditional, "
                  "and 3 gives 4's saturated colours"),
    Mistake("ddpm.py", "the conditional and unconditional halves of the batch swapped",
            "e_cond, e_uncond = eps.chunk(2)",
            "e_uncond, e_cond = eps.chunk(2)",
            shows="guidance pushes away from the label: higher scales draw everything but the "
                  "asked class"),
    # -------------------------------------------------------------- 9. classifier guidance
    Mistake("ddpm.py", "classifier guidance's term added: eps + s sqrt(1 - alpha_bar_t) grad",
            "return eps - classifier_scale",
            "return eps + classifier_scale",
            tests="tests/test_guidance.py",
            shows="(predicted) guidance pushes away from the asked class: higher scales draw "
                  "every class but that one"),
    Mistake("ddpm.py", "classifier guidance scaled by 1 - alpha_bar_t, its square root dropped",
            "(1 - ab).sqrt().float() * classifier(x_t, t, y)",
            "(1 - ab).float() * classifier(x_t, t, y)",
            tests="tests/test_guidance.py",
            shows="(predicted) barely visible at large t; near t = 1 the guide fades too fast, "
                  "so the class shows in the shapes but details drift"),
    Mistake("ddpm.py", "the classifier scale s left out of the term",
            "classifier_scale * (1 - ab)",
            "(1 - ab)",
            tests="tests/test_guidance.py",
            shows="(predicted) --classifier-scale does nothing: every scale samples as s = 1"),
    # -------------------------------------------------------------- 8'. multiplicative condition
    Mistake("ddpm.py", "the report's conditioning as h gamma(c), the 1 + dropped",
            "h = h * (1 + self.gamma(c)[:, :, None, None])",
            "h = h * self.gamma(c)[:, :, None, None]",
            shows="(predicted) gamma starts at zero, so every block's features are zero at the "
                  "start: --cond multiply trains from a dead network, its loss stuck near 1"),
    Mistake("ddpm.py", "the step's and the condition's halves of emb swapped in the ResBlock",
            "emb, c = emb.chunk(2, dim=1)",
            "c, emb = emb.chunk(2, dim=1)",
            shows="(predicted) the step scales the features and the class shifts them: "
                  "training still runs, samples follow the label weakly"),
    Mistake("ddpm.py", "the condition added to the step's embedding as well as multiplied",
            "emb = torch.cat([emb, c], 1) if self.cond == \"multiply\" else emb + c",
            "emb = torch.cat([emb + c, c], 1) if self.cond == \"multiply\" else emb + c",
            shows="(predicted) trains as well, but it is not the report's U-Net: the option "
                  "measures nothing different from the additive default"),
    # -------------------------------------------------------------- img2img, inpainting
    Mistake("ddpm.py", "img2img's strength inverted: start = (1 - strength) T",
            "start = round(strength * self.T)",
            "start = round((1 - strength) * self.T)",
            shows="--strength 0.9 returns the input almost untouched, 0.1 ignores it"),
    Mistake("ddpm.py", "SDEdit's q_sample given the noise as the image and init as the noise",
            "x = self.q_sample(init, torch.full((n,), ts[0], device=x.device), x)",
            "x = self.q_sample(x, torch.full((n,), ts[0], device=x.device), init)",
            shows="low strengths start from noise plus a faint copy of init: the output "
                  "ignores the input image"),
    Mistake("ddpm.py", "inpainting's known pixels noised to t, the step just taken, not t'",
            "known = ab_prev.sqrt().float() * init + (1 - ab_prev).sqrt().float() * noise",
            "known = ab.sqrt().float() * init + (1 - ab).sqrt().float() * noise",
            shows="the known region one step noisier than the rest: a seam at the mask's "
                  "edge, the filled part not matching its surround"),
    Mistake("ddpm.py", "inpainting keeps the sampled pixels where the mask is white",
            "return torch.where(mask > 0, known, x)",
            "return torch.where(mask > 0, x, known)",
            shows="the mask is inverted: the hole is kept, the known part redrawn"),
    # -------------------------------------------------------------- flags without effect
    Mistake("ddpm.py", "--cond let through on an unconditional model",
            'needs = {"p_uncond": {"conditional": True}, "cond": {"conditional": True}}',
            'needs = {"p_uncond": {"conditional": True}}',
            tests="tests/test_flags.py",
            shows="train.py ddpm --cond multiply trains an unconditional model as without it"),
    Mistake("ddpm.py", "--p-uncond let through on an unconditional model",
            'needs = {"p_uncond": {"conditional": True}, "cond":',
            'needs = {"cond":',
            tests="tests/test_flags.py",
            shows="--p-uncond without labels: nothing to drop, accepted in silence"),
    Mistake("ddpm.py", "beta_T's default 0.2, not the paper's 0.02",
            "beta_T=0.02,",
            "beta_T=0.2,",
            tests="tests/test_holes.py",
            shows="alpha_bar_T collapses to zero hundreds of steps before T: most steps are pure "
                  "noise, training wastes them and samples lose detail"),
]

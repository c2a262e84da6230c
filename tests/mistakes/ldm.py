"""ldm.py's mistakes: the first stage (the KL term, z ~ q(z|x), the VQ terms and their
stop-gradients), the latent's scale and shape, the caption encoder, the two stages, latent
img2img and inpainting."""
from tests.mistakes import Mistake

MISTAKES = [
    # -------------------------------------------------------------- 1. the first stage
    Mistake("ldm.py", "the KL weight w_KL forgotten: the KL term at weight 1",
            '"kl": self.kl_weight * kl}',
            '"kl": kl}',
            shows="the latents are squeezed towards N(0, I): reconstructions blurred, details "
                  "gone, and every LDM sample as blurred"),
    Mistake("ldm.py", "the closed-form KL with its sign flipped",
            "kl = -0.5 * per_image(1 + logvar - mu**2 - logvar.exp())",
            "kl = 0.5 * per_image(1 + logvar - mu**2 - logvar.exp())",
            shows="slow to show at w_KL = 1e-6: logvar and mu drift outwards, the kl term falls "
                  "below zero and keeps falling"),
    Mistake("ldm.py", "z = mu + exp(logvar) eps: sigma squared where sigma is meant",
            "z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)",
            "z = mu + logvar.exp() * torch.randn_like(mu)",
            shows="the decoder trains on latents noisier (or, for logvar < 0, cleaner) than "
                  "the ones the diffusion learns: decoded samples soft"),
    Mistake("ldm.py", "latent() returns mu when asked to sample and samples when asked for mu",
            "if logvar is None or not sample:",
            "if logvar is None or sample:",
            shows="img2img at strength 0 no longer returns D(E(x)) exactly, and the diffusion "
                  "learns the noiseless means only"),
    Mistake("ldm.py", "the number of stride-2 levels taken as f // 2 (right for f = 2, 4 only)",
            "n = int(math.log2(f))",
            "n = f // 2",
            shows="--f 8 builds 4 levels, latents S/16 where the diffusion expects S/8: stage "
                  "1 trains, stage 2 stops at its first step with a shape error"),
    # -------------------------------------------------------------- VQ
    Mistake("ldm.py", "the codebook term's stop-gradient on the codes, not on z_e",
            "codebook = per_image((z_e.detach() - z_q) ** 2)",
            "codebook = per_image((z_e - z_q.detach()) ** 2)",
            shows="the codes never move (no term trains them): perplexity stays at the few "
                  "codes nearest the encoder's start"),
    Mistake("ldm.py", "the commitment term's stop-gradient on z_e, not on the codes",
            "self.commitment * per_image((z_e - z_q.detach()) ** 2)",
            "self.commitment * per_image((z_e.detach() - z_q) ** 2)",
            shows="nothing holds z_e near the codes: the encoder's output drifts away and "
                  "reconstructions through the codebook get worse"),
    Mistake("ldm.py", "beta weighting the codebook term instead of the commitment term",
            "codebook = per_image((z_e.detach() - z_q) ** 2)\n"
            "        commit = self.commitment * per_image(",
            "codebook = self.commitment * per_image((z_e.detach() - z_q) ** 2)\n"
            "        commit = per_image(",
            shows="the codes follow the encoder four times slower than it is pulled to them: "
                  "fewer codes in use, a lower perplexity"),
    Mistake("ldm.py", "the straight-through estimator without its detach",
            "z_e + (z_q - z_e).detach()",
            "z_e + (z_q - z_e)",
            shows="the reconstruction's gradient goes to the codebook and none to the encoder: "
                  "the encoder learns only from the commitment term, recon stalls"),
    Mistake("ldm.py", "the farthest code taken: argmax of the distance",
            "k = dist.argmin(-1)",
            "k = dist.argmax(-1)",
            shows="every latent is snapped to the code most unlike it: reconstructions are "
                  "noise, perplexity near 1"),
    # -------------------------------------------------------------- 2. the scale, 3. stage two
    Mistake("ldm.py", "the scale taken as std(z), not 1 / std(z)",
            ".rsqrt())",
            ".sqrt())",
            shows="latents of std 0.2 or 5 instead of 1: the noise schedule is off by that "
                  "factor, samples washed out or noisy"),
    Mistake("ldm.py", "std(z) measured as sqrt(E[z^2]), the mean not subtracted",
            "moments[1] - moments[0] ** 2",
            "moments[1]",
            shows="latents with a large mean get a scale too small: their spread below 1, "
                  "samples washed out"),
    Mistake("ldm.py", "the latents divided by the scale for the diffusion, not multiplied",
            "return self.diffusion.loss(z * self.scale, y)",
            "return self.diffusion.loss(z / self.scale, y)",
            shows="the diffusion learns latents of std std(z)^2 while sampling decodes as if "
                  "std 1: samples washed out or noisy"),
    Mistake("ldm.py", "the encoder's latents for img2img left unscaled",
            "init = self.latent(init, sample=False) * self.scale",
            "init = self.latent(init, sample=False)",
            shows="img2img starts from latents 1 / scale too large: the edit blows out the "
                  "input's colours"),
    Mistake("ldm.py", "decode multiplies by the scale where it should divide",
            "z = z / self.scale.clamp_min(1e-8)",
            "z = z * self.scale",
            shows="the decoder gets latents scale^2 off: samples faded or saturated"),
    Mistake("ldm.py", "stage 1 runs ae_steps + 1 steps (<= for <)",
            "if self.ae_steps_done < self.ae_steps:",
            "if self.ae_steps_done <= self.ae_steps:",
            shows="one autoencoder step more than asked; with --ae, stage 1 is not skipped"),
    Mistake("ldm.py", "the two stages' learning rates swapped",
            '"lr": self.ae_lr},\n                  '
            '{"params": self.diffusion.parameters(), "lr": self.lr}]',
            '"lr": self.lr},\n                  '
            '{"params": self.diffusion.parameters(), "lr": self.ae_lr}]',
            shows="the autoencoder at 2e-4, the U-Net at 1e-4: both train, the diffusion "
                  "slower than its flag says"),
    # -------------------------------------------------------------- 4. captions
    Mistake("ldm.py", "the caption encoder given a causal mask: a word reads only those before",
            "a = F.scaled_dot_product_attention(q, k, v)",
            "a = F.scaled_dot_product_attention(q, k, v, is_causal=True)",
            shows="the first word is encoded alone: 'red circle' and 'red square' start alike, "
                  "and a colour cannot see its shape"),
    Mistake("ldm.py", "word ids start at 1, where UNK is",
            "ids = {w: i + 2 for i, w in enumerate(self.vocab)}",
            "ids = {w: i + 1 for i, w in enumerate(self.vocab)}",
            shows="the most frequent word is read as unknown and every other as its neighbour "
                  "in the vocabulary: prompts draw the wrong shapes"),
    Mistake("ldm.py", "no prompt filled with UNK, not PAD: not the empty caption trained as null",
            "y = torch.full((len(z_t), self.tau.pos.shape[0]), PAD, device=z_t.device)",
            "y = torch.full((len(z_t), self.tau.pos.shape[0]), UNK, device=z_t.device)",
            shows="unprompted samples are conditioned on a caption never seen in training: "
                  "odd colours, no shape"),
    # -------------------------------------------------------------- 7. inpainting
    Mistake("ldm.py", "a latent cell known if any channel of its pixels is, not every one",
            "known = (mask > 0).float().amin(1, keepdim=True)",
            "known = (mask > 0).float().amax(1, keepdim=True)",
            shows="a mask that is white in one channel only keeps pixels the user meant to "
                  "redraw"),
    Mistake("ldm.py", "--ae-steps let through beside --ae, which skips stage 1",
            '"ae_steps": {"ae": None}', '"ae_steps": {"reg": "kl"}',
            tests="tests/test_flags.py",
            shows="ldm --ae CKPT --ae-steps 1000 trains no autoencoder step"),
    Mistake("ldm.py", "the latent scale measured again on every batch, not once",
            "if not self.scale_measured:",
            "if True:",
            shows="each batch's latents are scaled to unit std by their own std: the diffusion "
                  "learns a moving target, and sampling divides by the last batch's scale"),
    Mistake("ldm.py", "the straight-through estimator written as z_q alone",
            "self.autoencoder.decode(z_e + (z_q - z_e).detach())",
            "self.autoencoder.decode(z_q)",
            shows="the reconstruction's gradient reaches the codes, never the encoder: the "
                  "encoder learns from the commitment term alone, recon stalls"),
    Mistake("ldm.py", "a loaded model measures the latent scale again",
            "self.scale_measured = bool(self.scale > 0)",
            "self.scale_measured = False",
            shows="a resumed run rescales the latents by its first batch's std: the diffusion "
                  "trained so far sees latents of another scale, its loss jumps at the resume"),
]

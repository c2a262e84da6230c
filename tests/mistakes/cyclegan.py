"""cyclegan.py's mistakes: the cycle and identity terms and their weights, the least-squares
targets, which D judges which domain, the history buffer, the residual blocks, the sampling
directions."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("cyclegan.py", "the cycle A -> B -> A written G(G(a)), not F(G(a))",
            "lam * (self.F(fake_b).float() - a)",
            "lam * (self.G(fake_b).float() - a)",
            shows="G is asked to be its own inverse: G(a) stays close to a, the translations "
                  "barely change the input's colours or shapes"),
    Mistake("cyclegan.py", "G(F(b)) compared with a, not with b",
            "lam * (self.G(fake_a).float() - b)",
            "lam * (self.G(fake_a).float() - a)",
            shows="G(F(b)) is pulled towards an unrelated image of A: the B -> A -> B cycle "
                  "loss never falls, F's translations drift from their inputs"),
    Mistake("cyclegan.py", "the cycle term computed on a detached G(a)",
            "self.F(fake_b).float()",
            "self.F(fake_b.detach()).float()",
            shows="the cycle trains F but not G: G(a) is free to lose a's content, translations "
                  "look like B but no longer like their input"),
    Mistake("cyclegan.py", "the cycle term without its weight lambda",
            '"cyc_A": lam * (',
            '"cyc_A": (',
            shows="the A -> B -> A cycle 10 times too weak: G(a) drifts away from a's layout, "
                  "mode collapse towards a few B-looking outputs"),
    Mistake("cyclegan.py", "the identity term for G computed on F",
            "w * (self.G(b).float() - b)",
            "w * (self.F(b).float() - b)",
            shows="F is pushed to leave B's images alone, the opposite of its job, and G is "
                  "never told to: its translations shift colours the paper's keep (Fig. 9)"),
    Mistake("cyclegan.py", "F's identity term fed b instead of a",
            "w * (self.F(a).float() - a)",
            "w * (self.F(b).float() - b)",
            shows="F is asked to leave B's images unchanged: F(b) stays close to b, the B -> A "
                  "translations barely translate"),
    Mistake("cyclegan.py", "lambda_identity not scaled by lambda",
            "w = self.lambda_identity * lam",
            "w = self.lambda_identity",
            shows="the identity term 10 times too weak (0.5, not 5): the colour shifts it is "
                  "meant to stop (Fig. 9) come back"),
    Mistake("cyclegan.py", "D_B's fake target 1 in the least squares, not 0",
            '"fake_B": 0.5 * (fake_b ** 2).mean()',
            '"fake_B": 0.5 * ((fake_b - 1) ** 2).mean()',
            shows="D_B is taught to score fakes as real: both its terms agree with G's, "
                  "the game is gone, G(a) drifts anywhere the cycle allows"),
    Mistake("cyclegan.py", "G's least-squares target 0, not 1",
            '"gan_G": ((self.D_B(fake_b).float() - 1) ** 2).mean()',
            '"gan_G": (self.D_B(fake_b).float() ** 2).mean()',
            shows="G helps D_B spot its fakes: D_B's fake score falls to 0, G(a) never looks "
                  "like B"),
    Mistake("cyclegan.py", "D_A's real term not halved",
            '"real_A": 0.5 * ((real_a - 1) ** 2).mean()',
            '"real_A": ((real_a - 1) ** 2).mean()',
            shows="D_A weighs real images twice as much as fakes and leans towards calling "
                  "everything real; the two games run at different speeds"),
    Mistake("cyclegan.py", "D_A shown domain B's images as its real ones",
            "real_a = self.D_A(a).float()",
            "real_a = self.D_A(b).float()",
            shows="D_A learns to tell B from F(b): F is pushed to produce B's images, the "
                  "B -> A translations keep their B look"),
    Mistake("cyclegan.py", "D_B shown F(b) as its fakes instead of G(a)",
            "self.D_B(self.history_b(self.fake_b))",
            "self.D_B(self.history_b(self.fake_a))",
            shows="D_B never sees G's outputs: G's adversarial signal comes from a D that was "
                  "not trained on them, G(a) does not turn into B"),
    Mistake("cyclegan.py", "G's adversarial term scored by D_A, not D_B",
            "((self.D_B(fake_b).float() - 1) ** 2)",
            "((self.D_A(fake_b).float() - 1) ** 2)",
            shows="G is pushed to make G(a) look like domain A, the input's: translations stay "
                  "in A while D_B's fake score stays low"),
    Mistake("cyclegan.py", "the history stores a past fake back when it shows it",
            "self.images[slot] = torch.where(past, fake, old)",
            "self.images[slot] = torch.where(past, old, fake)",
            shows="a shown past fake stays in the buffer and the new one is lost: D sees the "
                  "same old fakes again and again and falls behind G"),
    Mistake("cyclegan.py", "the history shows the new fake on heads and the past one on tails",
            "return torch.where(past, old, fake)",
            "return torch.where(past, fake, old)",
            shows="a new fake is stored but a past one shown, and the past one is kept too: D "
                  "sees stale fakes twice and the newest half never"),
    Mistake("cyclegan.py", "the history's slots drawn with replacement",
            "slot = torch.randperm(self.size, device=fake.device)[i]",
            "slot = torch.randint(self.size, (B,), device=fake.device)",
            shows="two fakes of a batch can swap with the same slot: one past fake shown "
                  "twice and one new fake lost; invisible at batch 1, the paper's"),
    Mistake("cyclegan.py", "the history keeps G's graph: its fakes not detached",
            "fake = fake.detach()",
            "fake = fake",
            shows="D's step reaches G and F through the buffer and frees their graphs: the "
                  "generators' step that follows crashes, or leaks memory batch after batch"),
    Mistake("cyclegan.py", "the residual block without its skip: f(x), not x + f(x)",
            "return x + self.f(x)",
            "return self.f(x)",
            shows="nine plain conv blocks: G no longer starts near a copy of its features, "
                  "training slower and less stable (the reason He et al. add the skip)"),
    Mistake("cyclegan.py", "sample's directions swapped: AtoB with F, BtoA with G",
            'net = self.G if direction == "AtoB" else self.F',
            'net = self.F if direction == "AtoB" else self.G',
            shows="sample.py --input testA runs F on A's images: outputs as if translating "
                  "B -> A, nearly unchanged or garbled"),
    Mistake("cyclegan.py", "6 residual blocks at 256x256, where the paper has 9",
            "(9 if image_size >= 256 else 6)",
            "(9 if image_size > 256 else 6)",
            shows="the paper's 256x256 generator one third shallower: less capacity for the "
                  "large changes (horse -> zebra), stripes patchier"),
    Mistake("cyclegan.py", "lambda_cyc's default 1, not the paper's 10",
            "lambda_cyc=10.0,",
            "lambda_cyc=1.0,",
            tests="tests/test_holes.py",
            shows="the cycle holds a tenth as hard: G and F drift into translations that do "
                  "not come back, colours and layouts change"),
    Mistake("cyclegan.py", "the history's buffer made anew at every call, not once",
            "if self.images is None:",
            "if True:",
            shows="once full, each D sees zeros for the past fakes it is shown: half its fakes "
                  "are blank images, D learns to spot them and G gets less signal"),
]

"""support/guidance.py and the DDPM's classifier guidance: on a Gaussian mixture, where the noised
marginals, the exact eps and the exact log p(y | x_t) are closed forms, guidance by the exact
classifier is the exact conditional eps; the noisy classifier, the loss hook, the command line."""
import math
import pytest
import torch
from ddpm import DDPM
from support import guidance

MU = torch.tensor([-0.5, 0.5], dtype=torch.float64)           # the two components' means
S = 0.15                                                      # their standard deviation
PI = torch.tensor([0.7, 0.3], dtype=torch.float64)            # their weights


def tiny():
    """A DDPM of 1x1 one-channel images: each sample is one number x_0 ~ the mixture."""
    return DDPM(1, 1, ch=32, ch_mult=(1,), num_res_blocks=1, attn_res=(), dropout=0.0)


def marginal(m, x_t, t):
    """x_t's marginal under q, per component k: N(sqrt(ab) mu_k, v), v = ab S^2 + 1 - ab. Returns
    (x, ab, v, log pi_k N_k(x)) with x (B, 1) and the log joint (B, 2), in float64."""
    x = x_t.reshape(-1, 1).double()
    ab = m.alpha_bar[t].reshape(-1, 1).double()
    v = ab * S**2 + 1 - ab
    log_joint = PI.log() - 0.5 * (x - ab.sqrt() * MU) ** 2 / v - 0.5 * torch.log(2 * math.pi * v)
    return x, ab, v, log_joint


def mixture_eps(m):
    """The optimal eps_theta for the mixture: -sqrt(1 - ab) times the score of the marginal,
    score = sum_k w_k (-(x - sqrt(ab) mu_k) / v), w_k = p(k | x_t)."""
    def eps_theta(x_t, t, y=None):
        x, ab, v, log_joint = marginal(m, x_t, t)
        w = log_joint.softmax(1)
        score = (w * -(x - ab.sqrt() * MU) / v).sum(1, keepdim=True)
        return (-(1 - ab).sqrt() * score).float().view_as(x_t)
    return eps_theta


def exact_grad(m, calls=None):
    """grad_{x_t} log p(y | x_t) = -(x - sqrt(ab) mu_y) / v - score, in closed form; calls, if
    given, records each (x_t, t) the sampler asks about."""
    def grad(x_t, t, y):
        if calls is not None:
            calls.append((x_t.clone(), t.clone()))
        x, ab, v, log_joint = marginal(m, x_t, t)
        w = log_joint.softmax(1)
        score = (w * -(x - ab.sqrt() * MU) / v).sum(1, keepdim=True)
        own = -(x - ab.sqrt() * MU[y][:, None]) / v
        return (own - score).float().view_as(x_t)
    return grad


def conditional_eps(m, x_t, t, y):
    """The exact eps of component y alone: sqrt(1 - ab) (x - sqrt(ab) mu_y) / v."""
    x, ab, v, _ = marginal(m, x_t, t)
    return (1 - ab).sqrt() * (x - ab.sqrt() * MU[y][:, None]) / v


@pytest.mark.parametrize("s", [0.0, 1.0, 2.5])
def test_guided_eps_is_the_exact_conditional_eps_at_scale_1(s):
    """eps_hat = eps - s sqrt(1 - ab) grad log p(y | x_t): with the exact eps and the exact
    classifier, Bayes' rule makes s = 1 the eps of component y alone, at every step (a sign or a
    missing square root breaks it where alpha_bar_t is not 0), s = 0 the unguided eps, and any s
    eps + s (eps_y - eps). Read from DDIM's deterministic steps, which eps_hat fixes exactly."""
    torch.manual_seed(0)
    m = tiny()
    m.eps_theta = mixture_eps(m)
    calls = []
    y = torch.tensor([0, 1] * 8)
    ts = m.timesteps(50)
    xs = list(m.reverse(16, y, ts, "ddim", 0.0, 1.0, clip=False, classifier=exact_grad(m, calls),
                        classifier_scale=s))
    assert len(calls) == len(ts) or s == 0
    x_t = torch.randn(16, 1, 1, 1) if s == 0 else None
    for i, (t, t_prev) in enumerate(zip(ts, ts[1:] + [-1])):
        if s == 0:
            break
        x_t, t_n = calls[i]
        ab = m.alpha_bar[t].double()
        ab_prev = m.alpha_bar_prev[t_prev + 1].double()
        # DDIM, eta 0: x' = sqrt(ab') (x - sqrt(1 - ab) e) / sqrt(ab) + sqrt(1 - ab') e; solve for e
        slope = (1 - ab_prev).sqrt() - (ab_prev / ab).sqrt() * (1 - ab).sqrt()
        e = (xs[i].double() - (ab_prev / ab).sqrt() * x_t.double()) / slope
        eps = mixture_eps(m)(x_t, t_n).double()
        want = eps + s * (conditional_eps(m, x_t, t_n, y).view_as(eps) - eps)
        assert torch.allclose(e, want, rtol=1e-3, atol=1e-3), (t, s, (e - want).abs().max())
    if s == 0:                                               # the hook is never asked: the old path
        assert calls == []


def test_guided_samples_land_in_the_asked_component():
    """Algorithm 2's 1000 steps with the exact eps: unguided, 30% land in the lighter component
    (its weight); guided at s = 1, each sample lands in the one asked for, N(mu_y, S^2)."""
    torch.manual_seed(0)
    m = tiny()
    m.eps_theta = mixture_eps(m)
    n = 1000
    y = torch.arange(n) % 2
    free = m.sample(n, y, steps=1000).flatten()
    assert (free > 0).float().mean().item() == pytest.approx(0.3, abs=0.05)
    x = m.sample(n, y, steps=1000, classifier=exact_grad(m), classifier_scale=1.0).flatten()
    nearest = (x[:, None] - MU.float()).abs().argmin(1)
    assert (nearest == y).float().mean().item() > 0.99
    for k in (0, 1):
        assert x[y == k].mean().item() == pytest.approx(MU[k].item(), abs=0.03)
        assert x[y == k].std().item() == pytest.approx(S, abs=0.03)


def test_the_loss_hook_is_minus_the_gradient_through_x0_hat():
    """For x_0 ~ N(mu, S^2) the exact eps makes x0_hat linear in x_t, with slope sqrt(ab) S^2 / v
    (through eps_theta; 1 / sqrt(ab) if eps were held fixed), so for L = (x0_hat - c)^2 the hook
    is -2 (x0_hat - c) sqrt(ab) S^2 / v."""
    m = tiny()
    mu = 0.2

    def eps_theta(x_t, t, y=None):
        ab = m.alpha_bar[t].view(-1, 1, 1, 1).float()
        return (1 - ab).sqrt() * (x_t - ab.sqrt() * mu) / (ab * S**2 + 1 - ab)
    m.eps_theta = eps_theta
    c = -0.4
    hook = guidance.loss_grad(m, lambda x0: (x0 - c).pow(2).flatten(1).sum(1))
    x_t = torch.linspace(-2, 2, 9).view(-1, 1, 1, 1)
    for t in (5, 100, 400):                        # not near T: x0_hat there is float32's noise
        t_n = torch.full((9,), t)
        ab = m.alpha_bar[t].float()
        v = ab * S**2 + 1 - ab
        x0_hat = (x_t - (1 - ab).sqrt() * eps_theta(x_t, t_n)) / ab.sqrt()
        want = -2 * (x0_hat - c) * ab.sqrt() * S**2 / v
        assert torch.allclose(hook(x_t, t_n, None), want, rtol=1e-3, atol=1e-6), t


def test_the_colour_loss_pulls_the_mean_colour():
    """L = H W ||mean colour - target||^2: each pixel's gradient is 2 (mean - target), at any size;
    guided samples' mean colour moves to the target."""
    target = torch.tensor([0.5, -0.5, 0.0])
    for size in (2, 8):
        x0 = torch.zeros(1, 3, size, size, requires_grad=True)
        guidance.colour_loss(target)(x0).sum().backward()
        want = (2 * (0 - target)).view(1, 3, 1, 1).expand_as(x0)
        assert torch.allclose(x0.grad, want)
    torch.manual_seed(0)
    m = DDPM(2, 3, ch=32, ch_mult=(1,), num_res_blocks=1, attn_res=(), dropout=0.0)

    def eps_theta(x_t, t, y=None):                           # x_0 ~ N(0, 0.5^2) in each pixel
        ab = m.alpha_bar[t].view(-1, 1, 1, 1).float()
        return (1 - ab).sqrt() * x_t / (ab * 0.25 + 1 - ab)
    m.eps_theta = eps_theta
    hook = guidance.loss_grad(m, guidance.colour_loss(target))
    free = m.sample(64, steps=50).mean((0, 2, 3))
    weak = m.sample(64, steps=50, classifier=hook, classifier_scale=1.0).mean((0, 2, 3))
    strong = m.sample(64, steps=50, classifier=hook, classifier_scale=10.0).mean((0, 2, 3))
    assert (free.abs() < 0.1).all(), free
    assert (0.1 < weak[0] < strong[0]) and (strong[1] < weak[1] < -0.1), (weak, strong)
    assert torch.allclose(strong, target, atol=0.05), strong


def test_log_p_by_hand():
    """Classes: log softmax at y. Sets: the sum over the asked objects of log sigmoid."""
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    got = guidance.log_p(logits, torch.tensor([0, 2]))
    z0 = math.log(math.exp(2) + 1 + math.exp(-1))
    z1 = math.log(math.exp(0.5) + math.exp(1.5) + 1)
    assert got.tolist() == pytest.approx([2 - z0, 0 - z1], abs=1e-5)
    sets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    got = guidance.log_p(logits, sets)

    def log_sigmoid(a):
        return -math.log(1 + math.exp(-a))
    assert got.tolist() == pytest.approx([log_sigmoid(2) + log_sigmoid(-1), log_sigmoid(1.5)],
                                         abs=1e-5)


def test_the_classifier_hook_is_each_samples_gradient():
    """grad_{x_t} log p_phi(y | x_t, t), per sample: a finite difference of one sample's log p
    in one pixel, and the same whatever else is in the batch."""
    torch.manual_seed(0)
    net = guidance.NoisyClassifier(channels=1, num_classes=3, width=8).double()
    hook = guidance.classifier_grad(net)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 999])
    y = torch.tensor([0, 1, 2, 1])
    g = hook(x, t, y)
    assert g.shape == x.shape
    h = 1e-5
    for i, (r, c) in enumerate([(0, 0), (3, 4), (7, 7), (2, 5)]):
        bump = torch.zeros_like(x[i:i + 1])
        bump[0, 0, r, c] = h
        up = guidance.log_p(net(x[i:i + 1] + bump, t[i:i + 1]), y[i:i + 1])
        down = guidance.log_p(net(x[i:i + 1] - bump, t[i:i + 1]), y[i:i + 1])
        assert ((up - down) / (2 * h)).item() == pytest.approx(g[i, 0, r, c].item(), rel=1e-4)
    assert torch.allclose(hook(x[1:2], t[1:2], y[1:2]), g[1:2])


def test_the_noisy_classifier_reads_the_step():
    """p_phi(y | x_t, t) depends on t: the same x_t at two steps gives two answers."""
    torch.manual_seed(0)
    net = guidance.NoisyClassifier(channels=1, num_classes=3, width=8)
    x = torch.randn(2, 1, 8, 8)
    assert not torch.allclose(net(x, torch.tensor([0, 0])), net(x, torch.tensor([900, 900])))


def dark_and_light(root, size=8, n=20):
    """Two classes of flat grey images, dark and light, each with a little noise."""
    from PIL import Image
    import numpy as np
    rng = np.random.default_rng(0)
    for name, level in (("dark", 40), ("light", 215)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            a = np.clip(level + rng.normal(0, 10, (size, size)), 0, 255).astype(np.uint8)
            Image.fromarray(a, "L").save(root / name / f"{i}.png")


def test_command_line(cli, tmp_path):
    """Train a tiny class-conditional DDPM and a noisy classifier on its data, then sample with
    classifier guidance, with classifier-free guidance too, and by a target colour; the bad
    inputs are one line each."""
    data = tmp_path / "data"
    dark_and_light(data)
    run = tmp_path / "run"
    r = cli("train.py", "ddpm", "--data", data, "--classes", "--image-size", 8, "--T", 20,
            "--ch", 32, "--ch-mult", "1,2", "--num-res-blocks", 1, "--attn-res", "",
            "--batch-size", 8, "--steps", 2, "--grid", 2, "--out", run)
    assert r.returncode == 0, r.out
    ckpt = run / "ckpt.pt"
    noisy = tmp_path / "noisy.pt"
    r = cli("support/guidance.py", "--data", data, "--classes", "--ddpm", ckpt, "--steps", 60,
            "--batch-size", 16, "--out", noisy)
    assert r.returncode == 0 and "wrote" in r.out, r.out
    ck = torch.load(noisy, weights_only=True)
    assert ck["schedule"] == dict(T=20, beta_1=1e-4, beta_T=0.02)
    assert ck["class_names"] == ["dark", "light"] and ck["held_out_accuracy"][1] == 1.0, ck
    out = tmp_path / "s.png"
    for knobs in (["--classifier", noisy, "--classifier-scale", 2, "--label", "light"],
                  ["--classifier", noisy, "--guidance", 3],
                  ["--target-colour", 200]):
        r = cli("sample.py", ckpt, "-n", 4, "--steps", 5, "--out", out, *knobs)
        assert r.returncode == 0 and "wrote" in r.out, (knobs, r.out)
    clean = tmp_path / "clean.pt"
    r = cli("evaluate.py", "--train-classifier", data, "--image-size", 8, "--epochs", 1,
            "--out", clean)
    assert r.returncode == 0, r.out
    other = tmp_path / "other"
    dark_and_light(other / "a")
    (other / "a" / "light").rename(other / "b")
    (other / "a" / "dark").rename(other / "c")
    (other / "a").rmdir()
    (other / "d").mkdir()
    (other / "b" / "0.png").rename(other / "d" / "0.png")
    wrong = tmp_path / "wrong.pt"
    r = cli("support/guidance.py", "--data", other, "--classes", "--image-size", 8, "--T", 20,
            "--steps", 2, "--out", wrong)
    assert r.returncode == 0, r.out
    for knobs, says in ((["--classifier", clean], "clean images"),
                        (["--classifier-scale", 2], "give one"),
                        (["--classifier", wrong], "tells apart"),
                        (["--classifier", noisy, "--target-colour", 9], "two guides"),
                        (["--target-colour", "1,2,3"], "one value per channel"),
                        (["--classifier", tmp_path / "none.pt"], "python -m support.guidance")):
        r = cli("sample.py", ckpt, "-n", 2, "--steps", 2, "--out", out, *knobs)
        assert r.returncode == 1 and says in r.out and "Traceback" not in r.out, (knobs, r.out)
        assert len(r.out.strip().splitlines()) == 1, r.out
    config = dict(image_size=8, channels=1, num_classes=0, T=20, ch=32, ch_mult=(1, 2),
                  num_res_blocks=1, attn_res=(), dropout=0.0)
    plain = tmp_path / "plain.pt"                # an unconditional DDPM: the classifier's classes
    torch.save(dict(model="ddpm", config=config, weights=DDPM(**config).state_dict(), ema=None,
                    class_names=None, step=0), plain)
    r = cli("sample.py", plain, "-n", 4, "--steps", 2, "--out", f"{tmp_path / 'each'}/",
            "--classifier", noisy, "--label", "light")
    assert r.returncode == 0, r.out
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == ["light"], r.out
    r = cli("support/guidance.py", "--data", data, "--out", tmp_path / "x.pt", "--steps", 2)
    assert r.returncode == 1 and "--classes" in r.out
    r = cli("support/guidance.py", "--data", data, "--classes", "--ddpm", ckpt, "--T", 5)
    assert r.returncode == 1 and "drop it" in r.out


def folders(root, counts):
    """Class folders of flat 8x8 grey images: {name: how many}, 0 for an empty folder."""
    from PIL import Image
    for i, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for j in range(n):
            Image.new("L", (8, 8), 20 * i + j).save(root / name / f"{j}.png")


@pytest.mark.parametrize("counts, flags, says", [
    ({"only": 12}, [], "has one class (only): a classifier needs at least 2"),
    ({"a": 1, "b": 0}, [], "no image of the class a to train on"),              # one image
    ({"a": 1, "b": 1}, [], "no image of the class a to train on"),              # it is held out
    ({"a": 12, "b": 12, "c": 0}, [], "no image of the class c to train on"),    # an empty class
    ({"a": 12, "b": 12}, ["--batch-size", 10**8], "choose a smaller --batch-size"),
])
def test_data_the_classifier_cannot_learn_from_is_refused_before_any_work(cli, tmp_path, counts,
                                                                          flags, says):
    """One class, one image, a class with no image to train on (every tenth is held out), a
    batch beyond memory: one line, before an image is decoded or a file written (it trained
    on one class at accuracy 1.0, or stopped on a traceback)."""
    folders(tmp_path / "data", counts)
    out = tmp_path / "noisy.pt"
    r = cli("support/guidance.py", "--data", tmp_path / "data", "--classes", "--image-size", 8,
            "--T", 20, "--steps", 2, "--out", out, *flags)
    assert r.returncode == 1 and says in r.stderr, r.out
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: "), r.out
    assert "decoding" not in r.out and not out.exists(), r.out


def test_a_set_whose_object_no_image_shows_is_refused(cli, tmp_path):
    """The lab's sets: an object of objects.json in no image trained on cannot be learned."""
    from support import scenes
    scenes.write(str(tmp_path / "lab"), n=12, size=8)
    r = cli("support/guidance.py", "--data", tmp_path / "lab" / "images", "--labels",
            tmp_path / "lab" / "train.json", "--image-size", 8, "--T", 20, "--steps", 2,
            "--out", tmp_path / "noisy.pt")
    assert r.returncode == 1 and "no image of the object" in r.stderr, r.out
    assert len(r.stderr.strip().splitlines()) == 1 and "decoding" not in r.out, r.out


def test_an_absurd_guidance_scale_is_refused_by_its_range(cli, tmp_path):
    """--classifier-scale 1e30 (NaN samples) is out of the declared range, in one line."""
    config = dict(image_size=8, channels=1, num_classes=0, T=20, ch=32, ch_mult=(1,),
                  num_res_blocks=1, attn_res=(), dropout=0.0)
    plain = tmp_path / "plain.pt"
    torch.save(dict(model="ddpm", config=config, weights=DDPM(**config).state_dict(), ema=None,
                    class_names=None, step=0), plain)
    for scale in ("1e30", "1001", "1000"):
        r = cli("sample.py", plain, "-n", 1, "--steps", 1, "--target-colour", 9,
                "--classifier-scale", scale, "--out", tmp_path / "s.png")
        if scale == "1000":
            assert r.returncode == 0, r.out
            continue
        assert r.returncode == 1 and f"must be in [0, 1000] (got {scale})" in r.stderr, r.out
        assert len(r.stderr.strip().splitlines()) == 1, r.out

"""dcgan.py: the lecture's parameter counts, the minimax value, confident and wrong discriminators,
the labels D and G see, which step's gradient reaches G, the optimisers' parameters, the prior of
z, learning on tiny data, the command line; and dcgan-lab's (DCGANLab): the Wasserstein critic's
sign and clipping, the conditional penalty's interpolates, ACGAN's labels and class loss, the
options, the lab report's D:G ratios (d_repeats, g_steps) and its learned condition map."""
import math
import pytest
import torch
import torch.nn.functional as F
from conftest import Fn, adversarial_steps
from dcgan import DCGAN, DCGANLab
from test_distributed import ALONE
import train


def bce(logit, target):
    """BCE of one logit against a target, in closed form: softplus(logit) - target * logit."""
    return math.log1p(math.exp(logit)) - target * logit


def count(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def test_parameter_counts_match_the_lecture():
    m = DCGAN(64, 3, z_dim=128, ngf=64, ndf=64)
    assert count(m.G) == 3_806_080
    assert count(m.D, m.D_out) == 2_765_696                      # BatchNorm after the first conv
    papers = DCGAN(64, 3, z_dim=128, bn_first=False)
    assert count(*papers.children()) - 3_806_080 == 2_765_568     # the paper's D


def test_sizes_add_or_remove_blocks():
    for S in (8, 16, 32, 64, 128):
        m = DCGAN(S, 3, ngf=8, ndf=8)
        assert m.sample(2).shape == (2, 3, S, S)
        assert m.logits(torch.randn(2, 3, S, S)).shape == (2,)
    with pytest.raises(ValueError, match="power of two"):
        DCGAN(48, 3)


def test_minimax_value_at_d_one_half():
    m = DCGAN(16, 3, ngf=8, ndf=8)
    torch.nn.init.zeros_(m.D_out.weight)                         # every logit 0: D = 1/2
    terms = m.d_loss(torch.rand(8, 3, 16, 16) * 2 - 1)
    assert (terms["real"] + terms["fake"]).item() == pytest.approx(2 * math.log(2))
    assert terms["D(x)"].item() == pytest.approx(0.5)
    assert terms["D(G(z))"].item() == pytest.approx(0.5)


@pytest.mark.parametrize("logit_of_real", [5.0, -5.0])          # D confidently right, then wrong
def test_confident_discriminator(logit_of_real):
    """Real x = +1, fakes -1, D's logit logit_of_real * mean(x): when D is confidently right its
    loss is near 0 and G's large (5.007 = -log sigmoid(-5)); the reverse when it is confidently
    wrong."""
    m = DCGAN(8, 1, ngf=4, ndf=4)
    m.generate = lambda z, y=None: -torch.ones(len(z), 1, 8, 8)
    m.D, m.D_out = Fn(lambda x: x), Fn(lambda h: logit_of_real * h.mean((1, 2, 3)))
    d, g = m.d_loss(torch.ones(8, 1, 8, 8)), m.g_loss(None)
    assert d["real"].item() == pytest.approx(bce(logit_of_real, 1.0), rel=1e-4)   # -log D(x)
    assert d["fake"].item() == pytest.approx(bce(-logit_of_real, 0.0), rel=1e-4)  # -log(1 - D)
    assert g["gan"].item() == pytest.approx(bce(-logit_of_real, 1.0), rel=1e-4)   # -log D(G(z))
    assert (d["real"] + d["fake"] < 0.02) == (logit_of_real > 0) == (g["gan"] > 5)


@pytest.mark.parametrize("loss", ["wgan", "wgan-gp"])
def test_wasserstein_critic_value_and_sign(loss):
    """A linear critic f(x) = w . x with ||w|| = 2, real data where f = 6 and fakes where f = -2:
    the critic's loss is E[f(G(z))] - E[f(x)] = -8, the penalty lambda (2 - 1)^2, G's loss
    -E[f(G(z))] = 2."""
    m = DCGANLab(8, 1, ngf=4, ndf=4, loss=loss, gp_lambda=3.0)
    w = torch.full((64,), 0.25)
    m.generate = lambda z, y=None: torch.full((len(z), 1, 8, 8), -0.125)
    m.D, m.D_out = Fn(lambda x: x), Fn(lambda h: h.flatten(1) @ w)
    d = m.d_loss(torch.full((8, 1, 8, 8), 0.375))
    assert d["real"].item() == pytest.approx(-6) and d["fake"].item() == pytest.approx(-2)
    assert (loss == "wgan-gp") == ("gp" in d)
    assert d.get("gp", torch.tensor(3.0)).item() == pytest.approx(3.0)
    assert m.g_loss(None)["wgan"].item() == pytest.approx(2)


def test_wgan_clips_every_critic_weight():
    """After each critic step all of D's parameters (BatchNorm's and the head's too) lie in
    [-c, c]; G's do not."""
    torch.manual_seed(0)
    m = DCGANLab(8, 1, ngf=4, ndf=4, loss="wgan", lr=0.01)
    assert m.n_critic == 5 and DCGANLab(8, 1, ngf=4, ndf=4, loss="wgan").lr == 5e-5
    adversarial_steps(m, lambda step: (torch.rand(8, 1, 8, 8) * 2 - 1, None), steps=5)
    d = torch.cat([p.flatten() for name, p in m.named_parameters() if name.startswith("D")])
    assert d.abs().max() <= 0.01 and (d.abs() == 0.01).sum() > len(d) / 4
    assert max(p.abs().max() for p in m.G.parameters()) > 0.1


def test_conditional_penalty_interpolates_within_one_condition():
    """G draws with the batch's labels shuffled; the penalty's x_hat must join x_i to a fake of its
    own label y_i, and be scored with y_i. Channel 0 of every image holds its label, so x_hat's
    channel 0 is y_i exactly when both ends share it; channel 1 is 0 for real, 1 for fake."""
    torch.manual_seed(0)
    m = DCGANLab(8, 2, 8, ngf=4, ndf=4, loss="wgan-gp")
    y = torch.arange(8)

    def image(label, source):
        return torch.stack([label.float(), source], 1)[:, :, None, None].expand(-1, -1, 8, 8)

    m.generate = lambda z, c: image(c, torch.ones(len(c)))
    seen = []
    m.logits = lambda v, c: seen.append((v.detach(), c)) or v.sum((1, 2, 3))   # the penalty's only
    m.d_loss(image(y, torch.zeros(8)), y)
    (x_hat, c), = seen
    assert (m.y_fake != y).any()                                 # the shuffle did move labels
    assert torch.equal(c, y)
    assert torch.allclose(x_hat[:, 0], y.float().view(-1, 1, 1).expand(-1, 8, 8))
    assert ((0 < x_hat[:, 1]) & (x_hat[:, 1] < 1)).all()         # strictly between real and fake


def test_acgan_classifies_fakes_by_the_labels_g_was_given():
    """A class head that reads the class off the image (the pixel value) and names it with logit
    10: the auxiliary CE is near 0 against the right labels (the data's for x, G's for G(z, c));
    with any label shuffled wrongly it is about 10 for that sample."""
    torch.manual_seed(0)
    m = DCGANLab(8, 1, 8, ngf=4, ndf=4, acgan=True)
    y = torch.arange(8)
    m.generate = lambda z, c: c.float().view(-1, 1, 1, 1).expand(-1, 1, 8, 8)
    m.D, m.D_out = Fn(lambda x: x), Fn(lambda h: h.mean((1, 2, 3)))
    m.D_aux = Fn(lambda h: 10 * F.one_hot(h[:, 0, 0, 0].round().long(), 8).float())
    d = m.d_loss(y.float().view(-1, 1, 1, 1).expand(-1, 1, 8, 8), y)
    g = m.g_loss(None, y)
    assert (m.y_fake != y).sum() >= 2                            # labels differ: a wrong one shows
    assert d["aux"].item() < 1e-3 and g["aux"].item() < 1e-3


def test_acgan_class_loss_when_g_draws_the_wrong_class():
    """G's fakes show class c + 1 where c was asked for; the head names what it sees with logit
    10. Then each fake costs CE = log(e^10 + 7) = 10.0009 (the real images log(1 + 7 e^-10)):
    D's aux term counts real and fake images, G's the fakes, both as losses to minimise."""
    torch.manual_seed(0)
    m = DCGANLab(8, 1, 8, ngf=4, ndf=4, acgan=True)
    y = torch.arange(8)
    m.generate = lambda z, c: ((c + 1) % 8).float().view(-1, 1, 1, 1).expand(-1, 1, 8, 8)
    m.D, m.D_out = Fn(lambda x: x), Fn(lambda h: h.mean((1, 2, 3)))
    m.D_aux = Fn(lambda h: 10 * F.one_hot(h[:, 0, 0, 0].round().long(), 8).float())
    d = m.d_loss(y.float().view(-1, 1, 1, 1).expand(-1, 1, 8, 8), y)
    g = m.g_loss(None, y)
    wrong, right = math.log(math.exp(10) + 7), math.log1p(7 * math.exp(-10))
    assert d["aux"].item() == pytest.approx(right + wrong, rel=1e-5)
    assert g["aux"].item() == pytest.approx(wrong, rel=1e-5)


def test_acgan_class_loss_by_hand():
    """-log P(C = c | X): for a class id, logsumexp(l) - l_c; for a set of labels, the BCE of each
    of the K logits summed over k (a mean over k would weigh L_C by 1/K)."""
    m = DCGANLab(8, 1, 3, ngf=4, ndf=4, acgan=True)
    l = torch.tensor([[2.0, -1.0, 0.5]])
    m.D_aux = Fn(lambda h: l)
    expected = math.log(sum(math.exp(v) for v in l[0].tolist())) - 0.5
    assert m.class_loss(None, torch.tensor([2])).item() == pytest.approx(expected, rel=1e-5)
    expected = bce(2.0, 1.0) + bce(-1.0, 0.0) + bce(0.5, 1.0)
    assert m.class_loss(None, torch.tensor([[1, 0, 1]])).item() == pytest.approx(expected, rel=1e-5)


def test_conditional_d_sees_each_fake_with_the_label_g_was_given():
    """A conditional D (no ACGAN) reads y as one-hot maps beside the image. G draws with the
    batch's labels shuffled and writes its label into its pixels: in D's step and G's, each input
    D sees must carry the maps of its own label."""
    torch.manual_seed(0)
    m = DCGAN(8, 1, 8, ngf=4, ndf=4)
    y = torch.arange(8)
    m.generate = lambda z, c: c.float().view(-1, 1, 1, 1).expand(-1, 1, 8, 8)
    seen = []
    m.D = Fn(lambda v: seen.append(v.detach()) or v)
    m.D_out = Fn(lambda h: h.mean((1, 2, 3)))
    m.d_loss(y.float().view(-1, 1, 1, 1).expand(-1, 1, 8, 8), y)
    m.g_loss(None)
    assert (m.y_fake != y).any() and len(seen) == 3              # real, fake, fake
    for v in seen:
        assert torch.equal(v[:, 1:].argmax(1), v[:, 0].round().long())


def test_generator_input_appends_the_labels_rows():
    """G's input [z, y W]: a class id c appends W's row c, a set of labels the sum of its rows."""
    m = DCGAN(8, 1, 5, z_dim=4, ngf=4, ndf=4)
    W = m.embed.weight
    m.G = Fn(lambda h: h)
    z = torch.randn(2, 4)
    h = m.generate(z, torch.tensor([2, 4])).flatten(1)
    assert torch.equal(h[:, :4], z) and torch.allclose(h[:, 4:], W[[2, 4]])
    h = m.generate(z, torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 0, 1]])).flatten(1)
    assert torch.allclose(h[:, 4:], torch.stack([W[0] + W[2], W[4]]))


@pytest.mark.parametrize("loss", ["bce", "wgan-gp"])
def test_gradients_reach_g_only_in_its_own_step(loss):
    """D's step trains D alone: its loss leaves G without a gradient (the fakes are detached). G's
    step, on the fakes d_loss kept with their graph, reaches all of G."""
    torch.manual_seed(0)
    m = DCGAN(8, 1, ngf=4, ndf=4) if loss == "bce" else DCGANLab(8, 1, ngf=4, ndf=4, loss=loss)
    sum(m.d_loss(torch.rand(8, 1, 8, 8) * 2 - 1).values()).backward()
    assert all(p.grad is None for p in m.G.parameters())
    assert all(p.grad is not None for p in [*m.D.parameters(), *m.D_out.parameters()])
    sum(m.g_loss(None).values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.G.parameters())


@pytest.mark.parametrize("loss", ["bce", "wgan"])
def test_each_optimizer_steps_its_own_network(loss):
    """D's optimizer: D, D_out, D_aux; G's: G and the label embedding; none in both."""
    m = DCGANLab(8, 1, 3, ngf=4, ndf=4, acgan=True, loss=loss)
    d_opt, g_opt = m.configure_optimizers()
    ids = lambda params: {id(p) for p in params}
    in_opt = lambda opt: ids(p for g in opt.param_groups for p in g["params"])
    d_nets, g_nets = (m.D, m.D_out, m.D_aux), (m.G, m.embed)
    assert in_opt(d_opt) == ids(p for net in d_nets for p in net.parameters())
    assert in_opt(g_opt) == ids(p for net in g_nets for p in net.parameters())


def test_g_draws_z_from_the_prior_in_training_and_sampling():
    """z ~ N(0, I) in d_loss and in sample alike: mean 0, std 1, N's tails P(|z| > 2) = 0.0455."""
    torch.manual_seed(0)
    m = DCGAN(8, 1, z_dim=4, ngf=4, ndf=4)
    seen = []
    m.generate = lambda z, y=None: seen.append(z) or torch.zeros(len(z), 1, 8, 8)
    m.D, m.D_out = Fn(lambda x: x), Fn(lambda h: h.mean((1, 2, 3)))
    m.d_loss(torch.zeros(50_000, 1, 8, 8))
    m.sample(50_000)
    assert len(seen) == 2
    for z in seen:
        assert z.shape == (50_000, 4)
        assert z.mean().abs() < 0.01 and z.std().item() == pytest.approx(1.0, rel=0.01)
        assert (z.abs() > 2).float().mean().item() == pytest.approx(0.0455, abs=0.003)


def test_generator_spans_the_data_range():
    """Images lie in [-1, 1] and so must G(z): G's last conv pushed hard either way, its output
    goes to -1 and to +1, and sits at 0 in between (a sigmoid would stop at 0 and 1/2)."""
    m = DCGAN(8, 1, ngf=4, ndf=4).eval()
    for pre, end in [(-20.0, -1.0), (0.0, 0.0), (20.0, 1.0)]:
        m.G[-2] = Fn(lambda h, pre=pre: torch.full((len(h), 1, 8, 8), pre))   # the last conv
        x = m.sample(4)
        assert torch.allclose(x, torch.full_like(x, end), atol=1e-4), (pre, x.mean())


def test_initialisation_is_the_papers():
    m = DCGAN(64, 3)
    w = torch.cat([p.flatten() for n, p in m.named_parameters()
                   if n.endswith("weight") and p.dim() == 4])
    bn = torch.cat([mod.weight for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)])
    assert abs(w.mean()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01)
    assert bn.std().item() == pytest.approx(0.02, rel=0.2)


def test_conditional_acgan_and_wgan_gp():
    torch.manual_seed(0)
    x, y = torch.rand(4, 3, 16, 16) * 2 - 1, torch.tensor([0, 1, 2, 1])
    cond = DCGAN(16, 3, 3, ngf=8, ndf=8)
    z = torch.randn(2, 128)
    change = cond.generate(z, torch.tensor([0, 0])) - cond.generate(z, torch.tensor([2, 2]))
    assert change.abs().mean() > 1e-4
    assert cond.D[0][0].in_channels == 3 + 3                     # one-hot maps join D's input
    ac = DCGANLab(16, 3, 3, ngf=8, ndf=8, acgan=True)
    assert ac.D[0][0].in_channels == 3 and "aux" in ac.d_loss(x, y) and "aux" in ac.g_loss(x, y)
    w = DCGANLab(16, 3, ngf=8, ndf=8, loss="wgan-gp")
    assert w.n_critic == 5
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in w.D.modules())
    assert set(w.d_loss(x)) == {"real", "fake", "gp"} and set(w.g_loss(x)) == {"wgan"}
    with pytest.raises(ValueError, match="class labels"):
        DCGANLab(16, 3, acgan=True)
    with pytest.raises(RuntimeError, match="call d_loss first"):
        DCGAN(16, 3, ngf=8, ndf=8).g_loss(x)


def spied_steps(m, steps, x, y):
    """train.py's train_step run `steps` times on one batch (x, y), with every D and G update
    noted in order (0 = D's optimizer, 1 = G's), and for each call of d_loss, g_loss and
    generate: what it was given, and the fakes g_loss scored."""
    opts = m.configure_optimizers()
    updates = []
    for k, opt in enumerate(opts):
        opt.register_step_pre_hook(lambda o, a, kw, k=k: updates.append(k))
    calls = []
    d_loss, g_loss, generate = m.d_loss, m.g_loss, m.generate

    def spy_d(x, y=None):
        calls.append(("d", x))
        out = d_loss(x, y)
        calls.append(("drew", m.fake))
        return out

    def spy_g(x, y=None):
        out = g_loss(x, y)
        calls.append(("g", m.fake))
        return out

    def spy_generate(z, c=None):
        calls.append(("generate", c))
        return generate(z, c)
    m.d_loss, m.g_loss, m.generate = spy_d, spy_g, spy_generate
    for step in range(steps):
        train.train_step(m, opts, None, x, y, step, 0.0, torch.zeros((), dtype=torch.bool), ALONE)
    return updates, calls


def test_d_repeats_steps_d_on_the_same_batch_then_g_once():
    """--d-repeats 3: three D updates, each on the very tensor of the batch (not a new draw),
    each moving D, then one G update on the fakes of the last D step; n_critic still counts
    train steps: with n_critic 2, G steps at the second step only."""
    torch.manual_seed(0)
    m = DCGANLab(8, 1, 3, ngf=4, ndf=4, z_dim=4, d_repeats=3)
    x = torch.rand(8, 1, 8, 8) * 2 - 1
    y = torch.arange(8) % 3
    w = []
    m.D_out.register_forward_pre_hook(lambda mod, a: w.append(mod.weight.detach().clone()))
    updates, calls = spied_steps(m, 1, x, y)
    assert updates == [0, 0, 0, 1]
    seen = [v for what, v in calls if what == "d"]
    assert len(seen) == 3 and all(v is x for v in seen)          # the same mini-batch, 3 times
    assert not torch.equal(w[0], w[2]) and not torch.equal(w[2], w[4])   # each D step moved D
    drew = [v for what, v in calls if what == "drew"]
    assert [v for what, v in calls if what == "g"][0] is drew[-1]         # the last D step's fakes
    m = DCGANLab(8, 1, 3, ngf=4, ndf=4, z_dim=4, d_repeats=2, n_critic=2)
    assert spied_steps(m, 2, x, y)[0] == [0, 0, 0, 0, 1]


def test_g_steps_take_more_g_updates_than_d_updates_each_on_new_z():
    """--g-steps 2: one D update, then two G updates; the first on the fakes d_loss drew, the
    second on fakes drawn anew (new z) for the same labels c, so each G update has a graph of its
    own; the next train step's first G update is again on its own d_loss's fakes."""
    torch.manual_seed(0)
    m = DCGANLab(8, 1, 3, ngf=4, ndf=4, z_dim=4, g_steps=2)
    x = torch.rand(8, 1, 8, 8) * 2 - 1
    y = torch.arange(8) % 3
    updates, calls = spied_steps(m, 2, x, y)
    assert updates == [0, 1, 1, 0, 1, 1]
    drew = [v for what, v in calls if what == "drew"]
    scored = [v for what, v in calls if what == "g"]
    assert scored[0] is drew[0] and scored[2] is drew[1]          # each step's d_loss fakes first
    assert not torch.equal(scored[1], scored[0])                  # then new z
    labels = [c for what, c in calls if what == "generate"]
    assert len(labels) == 4 and labels[1] is labels[0]            # G's 2nd step: the same c
    assert not torch.equal(labels[0], y)                          # c: the batch's labels shuffled


@pytest.mark.parametrize("y", [torch.tensor([0, 2, 1, 2]),
                               torch.tensor([[1.0, 0, 1], [0, 1, 0], [0, 0, 1], [1, 1, 0]])])
def test_y_embed_gives_d_one_learned_map_of_the_condition(y):
    """--y-embed (the lab report's): D reads [x, Linear(K, S^2)(y) as one S x S map] in place of
    K one-hot maps, for a class id (its one-hot row) or a set; each fake with the map of the label
    G drew it with; the Linear is D's (its optimizer, its gradient in D's step), and learns."""
    torch.manual_seed(0)
    m = DCGANLab(8, 1, 3, ngf=4, ndf=4, z_dim=4, y_embed=True)
    assert m.D[0][0].in_channels == 2                            # the image and one map
    seen = []
    m.D[0].register_forward_pre_hook(lambda mod, a: seen.append(a[0].detach()))
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    terms = m.d_loss(x, y)
    onehot = F.one_hot(y, 3).float() if y.dim() == 1 else y
    W, b = m.D_embed.weight, m.D_embed.bias                      # (S^2, K), (S^2,)
    maps = lambda c: (c @ W.T + b).view(-1, 1, 8, 8)
    real, fake = seen
    assert torch.equal(real[:, :1], x)
    assert torch.allclose(real[:, 1:], maps(onehot), atol=1e-6)
    c = F.one_hot(m.y_fake, 3).float() if y.dim() == 1 else m.y_fake
    assert torch.allclose(fake[:, 1:], maps(c), atol=1e-6)
    sum(v for v in terms.values() if v.requires_grad).backward()
    assert W.grad is not None and W.grad.abs().sum() > 0          # D's step trains the map
    d_opt, g_opt = m.configure_optimizers()
    in_d = {id(p) for g in d_opt.param_groups for p in g["params"]}
    in_g = {id(p) for g in g_opt.param_groups for p in g["params"]}
    assert {id(W), id(b)} <= in_d and not {id(W), id(b)} & in_g
    with pytest.raises(ValueError, match="class labels"):
        DCGANLab(8, 1, 0, y_embed=True)


def test_learns_the_colour_of_the_data():
    """A few hundred steps on red squares: D does not win outright, and G's samples move from
    grey towards the data's colour statistics."""
    torch.manual_seed(0)
    data = -torch.ones(512, 3, 16, 16)
    for i, (r, c, s) in enumerate(torch.randint(0, 8, (512, 3)).tolist()):
        data[i, 0, r:r + s + 4, c:c + s + 4] = 0.8               # a red square on black
    target = data.mean((0, 2, 3))                                # per-channel means
    m = DCGAN(16, 3, z_dim=32, ngf=32, ndf=16)
    m.eval()
    before = (m.sample(256).mean((0, 2, 3)) - target).abs().sum()
    m.train()
    batch = lambda step: (data[torch.randint(0, 512, (32,))], None)
    d_terms = adversarial_steps(m, batch, steps=300)
    right = [(t["D(x)"] + 1 - t["D(G(z))"]) / 2 for t in d_terms[200:]]
    accuracy = torch.stack(right).mean()                         # as the loop sees it
    m.eval()
    after = (m.sample(256).mean((0, 2, 3)) - target).abs().sum()
    assert accuracy < 0.95, accuracy
    assert after < 0.6 * before, (before, after)                 # seeds 0-2: 0.49-0.51


@pytest.mark.parametrize("model, extra", [
    ("dcgan", []), ("dcgan", ["--classes", "--betas", "0,0.9"]),
    ("dcgan-lab", ["--loss", "wgan"]),
    ("dcgan-lab", ["--loss", "wgan-gp", "--classes", "--n-critic", 2]),
    ("dcgan-lab", ["--classes", "--acgan", "--soft-labels", "--flip-labels", 0.1,
                   "--d-dropout", 0.2, "--n-critic", 2]),
    ("dcgan-lab", ["--classes", "--y-embed", "--d-repeats", 3]),
    ("dcgan-lab", ["--classes", "--y-embed", "--g-steps", 2])])
def test_command_line(cli, tmp_path, model, extra):
    out = tmp_path / "run"
    args = ["--image-size", 16, "--ngf", 8, "--ndf", 8, "--batch-size", 8, "--grid", 4,
            "--log-every", 2, *extra]
    r = cli("train.py", model, "--steps", 4, "--out", out, *args)
    assert r.returncode == 0, r.out
    assert "D.real" in r.out and ("D.aux" in r.out if "--acgan" in extra else True)
    r = cli("train.py", model, "--steps", 6, "--out", out, "--resume")
    assert r.returncode == 0, r.out
    r = cli("sample.py", out / "ckpt.pt", "-n", 4, "--gif", "--frames", 4,
            "--out", tmp_path / "s.png")
    assert r.returncode == 0 and (tmp_path / "s.gif").exists(), r.out


"""Conditions as sets (the lab's multi-hot y, (B, K) float) in every conditional model: a set
changes the output and a one-hot vector is exactly its class id; the embedding of a set is the sum
of its labels' embeddings; the zero vector is DDPM's null condition; ACGAN's multi-label head is
BCE; every loss trains with sets, also under bf16 autocast."""
import math
import pytest
import torch
from conftest import Fn
from dcgan import DCGAN, DCGANLab
from ddpm import DDPM, timestep_embedding
from gan import GAN
from vae import VAE

K = 4
IDS = torch.tensor([0, 1, 2, 3])
SETS_A = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 1], [1, 0, 1, 1], [0, 0, 1, 0]]).float()
# each row of SETS_B another set than SETS_A's, with the same first label: argmax can't tell
SETS_B = torch.tensor([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1]]).float()
MODELS = {
    "cvae": lambda: VAE(8, 3, K, ch=8, z_dim=4),
    "cgan": lambda: GAN(8, 3, K, hidden=16, z_dim=8),
    "dcgan": lambda: DCGAN(8, 3, K, z_dim=8, ngf=8, ndf=8),
    "acgan": lambda: DCGANLab(8, 3, K, z_dim=8, ngf=8, ndf=8, acgan=True),
    "ddpm": lambda: DDPM(8, 3, K, T=10, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_res=(4,),
                         dropout=0.0),
}


def make(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    if name == "ddpm":                   # its zero-initialised layers would give eps = 0 for any y
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.1)
    return model


def outputs(model, y):
    """What y reaches: the samples (same noise each call) and, where y enters, the encoder or D."""
    torch.manual_seed(1)
    x = torch.rand(len(y), 3, 8, 8) * 2 - 1
    knobs = dict(steps=3, sampler="ddim", guidance=3.0) if isinstance(model, DDPM) else {}
    torch.manual_seed(2)
    with torch.no_grad():
        out = [model.sample(len(y), y, **knobs)]
        if isinstance(model, VAE):
            out.append(model.encode(x, y)[0])                                 # mu of q(z | x, y)
        elif not getattr(model, "acgan", False) and not isinstance(model, DDPM):
            out.append(model.logits(x, y))                                    # D(x | y)
    return out


@pytest.mark.parametrize("name", MODELS)
def test_a_set_changes_the_output_and_a_one_hot_vector_is_its_class_id(name):
    model = make(name)
    ids, one_hot = outputs(model, IDS), outputs(model, torch.eye(K)[IDS])
    for o_ids, o_hot, o_a, o_b in zip(ids, one_hot, outputs(model, SETS_A), outputs(model, SETS_B)):
        assert torch.equal(o_ids, o_hot)                      # e_c is class c: the same maths
        assert (o_a - o_b).reshape(K, -1).abs().amax(1).min() > 1e-4   # another set, another output


def label_embedding(model, y):
    """The vector a model adds (ddpm) or appends (cvae, dcgan's G) for the condition y, read off
    the model."""
    if isinstance(model, VAE):
        return model.condition(torch.zeros(len(y), 0), y)
    seen = []
    if isinstance(model, DCGAN):                                              # G's input: [z, y W]
        read = lambda m, args: seen.append(args[0][:, model.z_dim:, 0, 0])
        hook = model.G.register_forward_pre_hook(read)
        model.generate(torch.zeros(len(y), model.z_dim), y)
        hook.remove()
        return seen[0]
    read = lambda m, args: seen.append(args[1])                       # a ResBlock's emb
    hook = model.net.down[0][0].register_forward_pre_hook(read)
    t = torch.full((len(y),), 5)
    model.eps_theta(torch.zeros(len(y), 3, 8, 8), t, y)
    hook.remove()
    return seen[0] - model.net.time_mlp(timestep_embedding(t, model.net.ch))   # time_mlp(t) + y W


@pytest.mark.parametrize("name", ["cvae", "dcgan", "ddpm"])
def test_the_embedding_of_a_set_is_the_sum_of_its_labels_embeddings(name):
    """emb(y) = y W: for e_c the Embedding's row c (the single-class lookup), for a set the sum of
    its labels' rows, and for the zero vector nothing at all (ddpm's null condition adds no
    vector)."""
    model = make(name)
    lookup = (model.net.label if name == "ddpm" else model.embed)      # the Embedding of class ids
    with torch.no_grad():
        got = label_embedding(model, torch.cat([SETS_A, torch.zeros(1, K)]))
        want = torch.stack([lookup(torch.nonzero(s).flatten()).sum(0) for s in SETS_A] +
                           [torch.zeros(lookup.embedding_dim)])
        assert torch.allclose(got, want, atol=1e-5)
        assert torch.allclose(label_embedding(model, IDS), lookup(IDS), atol=1e-5)


def test_the_zero_vector_is_the_null_condition_of_guidance():
    """7. eps = eps_uncond + s (eps_cond - eps_uncond): s = 1 is the network at the set, and the
    unconditional half is the network at the zero vector, for any s."""
    model = make("ddpm")
    x, t = torch.randn(K, 3, 8, 8), torch.tensor([1, 4, 7, 9])
    with torch.no_grad():
        cond, uncond = model.eps_theta(x, t, SETS_A), model.eps_theta(x, t, torch.zeros(K, K))
        assert torch.allclose(model.guided_eps(x, t, SETS_A, 1.0), cond, atol=1e-5)
        assert torch.allclose(model.guided_eps(x, t, SETS_A, 0.0), uncond, atol=1e-5)
        guided = model.guided_eps(x, t, SETS_A, 3.0)
        assert torch.allclose(guided, uncond + 3 * (cond - uncond), atol=1e-4)
        assert (cond - uncond).abs().amax() > 1e-3                        # the two halves do differ


@pytest.mark.parametrize("p_uncond", [0.0, 1.0])
def test_classifier_free_dropout_replaces_a_dropped_set_by_zeros(p_uncond):
    model = make("ddpm")
    model.p_uncond, seen = p_uncond, []
    model.eps_theta = lambda x_t, t, y: seen.append(y) or torch.zeros_like(x_t)
    model.loss(torch.zeros(K, 3, 8, 8), SETS_A)
    assert torch.equal(seen[0], SETS_A if p_uncond == 0 else torch.zeros(K, K))


def test_acgan_multi_label_loss_is_bce_summed_over_the_labels():
    """-log P(C = c | X) for a set c of independent labels:
    -sum_k [c_k log sigma(l_k) + (1 - c_k) log(1 - sigma(l_k))], by hand on two images of three
    labels, mean over the two."""
    m = DCGANLab(8, 1, 3, ngf=4, ndf=4, acgan=True)
    m.D_aux = Fn(lambda h: h)                                         # the logits are the features
    l, c = [[2.0, -1.0, 0.5], [-3.0, 0.0, 1.5]], [[1, 0, 1], [0, 1, 0]]
    sigma = lambda v: 1 / (1 + math.exp(-v))
    want = -sum(ck * math.log(sigma(lk)) + (1 - ck) * math.log(1 - sigma(lk))
                for li, ci in zip(l, c) for lk, ck in zip(li, ci)) / 2
    got = m.class_loss(torch.tensor(l).view(2, 3, 1, 1), torch.tensor(c).float())
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_acgan_scores_each_image_against_its_own_set():
    """A head that reads the set off the image and names it with logits +-10: the multi-label loss
    is near 0 against the right sets (the data's for x, G's c for G(z, c)); a set shuffled wrongly
    costs >= 10."""
    torch.manual_seed(0)
    m = DCGANLab(8, 1, K, ngf=4, ndf=4, acgan=True)
    m.generate = lambda z, c: c.view(-1, 1, 1, K)                             # the image is its set
    m.D, m.D_out = Fn(lambda x: x), Fn(lambda h: h.mean((1, 2, 3)))
    m.D_aux = Fn(lambda h: 20 * h.flatten(1) - 10)             # +10 for a present label, -10 absent
    d = m.d_loss(SETS_A.view(-1, 1, 1, K), SETS_A)
    g = m.g_loss(None, SETS_A)
    assert (m.y_fake != SETS_A).any(1).sum() >= 2             # the shuffle moved sets: one shows
    assert d["aux"].item() < 1e-3 and g["aux"].item() < 1e-3


def label_grads(model):
    """The gradients of the weights each label has of its own, one row per label: (K, ...)."""
    if isinstance(model, DCGAN) and not getattr(model, "acgan", False):   # also D's input maps
        return [model.embed.weight.grad, model.D[0][0].weight.grad[:, 3:].transpose(0, 1)]
    if isinstance(model, DCGAN):
        return [model.embed.weight.grad]
    if isinstance(model, GAN):                   # the one-hot inputs of G's and D's first layers
        return [model.G[0].weight.grad[:, model.z_dim:].T,
                model.D[0].weight.grad[:, -model.num_classes:].T]
    if isinstance(model, DDPM):
        return [model.net.label.weight.grad]
    return [model.embed.weight.grad]


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16 autocast"])
@pytest.mark.parametrize("name", MODELS)
def test_every_loss_trains_with_sets_and_only_the_present_labels_weights_move(name, bf16):
    """One training step's gradients with a batch of sets (float32 multi-hot, as train.py passes
    them): all finite, and each label's own weights get a gradient exactly when the label is present
    in the batch."""
    model = make(name).train()
    if name == "ddpm":
        model.p_uncond = 0.0                                          # every set seen, none dropped
    y = SETS_A * torch.tensor([1.0, 1.0, 1.0, 0.0])                  # label 3 absent from the batch
    x = torch.rand(K, 3, 8, 8) * 2 - 1
    objectives = [model.loss] if hasattr(model, "loss") else [model.d_loss, model.g_loss]
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        terms = [v for objective in objectives for v in objective(x, y).values()]
        total = sum(v for v in terms if v.requires_grad)
    total.backward()
    assert total.dtype == torch.float32 and torch.isfinite(total)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    for grad in label_grads(model):
        moved = grad.reshape(K, -1).abs().amax(1) > 0        # (K,): a gradient for this label
        assert moved.tolist() == [True, True, True, False]

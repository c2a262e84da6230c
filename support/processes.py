"""A run across processes and restarts: under torchrun every process takes the same
branch, draws its own random numbers and steps with the averaged gradients, as DDP does;
--resume puts back the weights, EMA, optimizers and RNG states."""
import torch
import torch.distributed as dist
from support.cli import Fail


def agree(value, proc):
    """The largest value over all processes: every process takes the same branch."""
    t = torch.tensor(float(value))
    if proc.world > 1:                                      # on the CPU: no GPU wait
        dist.all_reduce(t, dist.ReduceOp.MAX, group=proc.host)
    return t.item()


def in_first(proc, fn, *args):
    """fn(*args) in process 0 alone (a checkpoint, a grid): a Fail it raises stops every
    process with the same line. Returns fn's result in process 0."""
    result = None
    message = [None]
    if proc.rank == 0:
        try:
            result = fn(*args)
        except Fail as e:
            message = [str(e)]
    if proc.world > 1:
        dist.broadcast_object_list(message, src=0, group=proc.host)
    if message[0]:
        raise Fail(message[0])
    return result


def first_process_first(proc, fn, *args):
    """fn(*args) in process 0, then in the others: process 0 decodes and caches images."""
    result = in_first(proc, fn, *args)
    return result if proc.rank == 0 else fn(*args)


def rng_states(proc):
    """Every process's RNG states (CPU, and CUDA), gathered in process 0 to be saved."""
    cuda = torch.cuda.get_rng_state(proc.device) if proc.cuda else None
    mine = dict(cpu=torch.get_rng_state(), cuda=cuda)
    if proc.world == 1:
        return [mine]
    every = [None] * proc.world if proc.rank == 0 else None
    dist.gather_object(mine, every, dst=0, group=proc.host)
    return every


def own_noise(proc, seed, states=None, step=0):
    """Each process's random numbers its own once the model is built: a checkpoint's
    states (rng_states) put back, else process k > 0 seeded seed + 1000 k."""
    if isinstance(states, dict):                            # older: process 0's alone
        states = [states]
    if states and proc.rank < len(states):
        torch.set_rng_state(states[proc.rank]["cpu"])
        if proc.cuda and states[proc.rank]["cuda"] is not None:
            torch.cuda.set_rng_state(states[proc.rank]["cuda"], proc.device)
    elif proc.rank > 0:                                     # fresh, or a new process
        torch.manual_seed(seed + 1000 * proc.rank + step)


def all_reduce_grads(params, world):
    """The mean gradient of all processes, written out: DDP would hook forward(), and the
    models are driven through loss, d_loss and g_loss."""
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.flatten() for g in grads])             # one message for all
    dist.all_reduce(flat)
    for g, f in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(f.view_as(g) / world)


def share_scale(model, proc):
    """ldm.py measures its latents' scale on the first diffusion batch it sees; under torchrun
    each process sees its own slice, so the moments E[z], E[z^2] are averaged over the
    processes, and every process scales by the same 1 / std(z) of the whole batch."""
    if proc.world == 1 or not hasattr(model, "measure_scale"):
        return
    own = model.measure_scale

    def measure_scale(z):
        moments = own(z)
        dist.all_reduce(moments)
        return moments / proc.world

    model.measure_scale = measure_scale


def resume(ck, model, opts, ema, name, config, args, proc):
    """The checkpoint's weights, EMA, optimizer moments and RNG states put back -> its
    step. The optimizers keep this command line's settings: --resume --lr X trains with X."""
    try:
        model.load_state_dict(ck["weights"])
        if ema is not None:
            ema.load_state_dict(ck["ema"] or ck["weights"])
        for opt, state in zip(opts, ck["optimizers"], strict=True):
            groups = opt.param_groups
            now = [{k: v for k, v in g.items() if k != "params"} for g in groups]
            opt.load_state_dict(state)
            for g, settings_now in zip(opt.param_groups, now):
                g.update(settings_now)
        own_noise(proc, args["seed"], ck["rng"], ck["step"])
    except (RuntimeError, ValueError, KeyError, TypeError):
        raise Fail(f"{args['out']}/ckpt.pt does not fit this {name} configuration: "
                   "resume without changing its shape flags")
    was = ck["config"]
    changed = [f"{k} {was[k]} -> {v}" for k, v in config.items() if was.get(k, v) != v]
    if changed:
        proc.log("changed on resume: " + ", ".join(changed))
    return ck["step"]


def end(proc):
    """The lock on --out released, the process group closed."""
    if proc.lock:
        proc.lock.close()
    if proc.world > 1:
        dist.destroy_process_group()

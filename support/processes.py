"""The processes of a run: one for `python train.py`, one per GPU under torchrun.

    torchrun --nproc_per_node=4 train.py MODEL ...      # data parallel, one process per GPU

processes() reads torchrun's variables and sets the device and its precision; the others make
every process take the same branch, give each its own random numbers (saved and restored on
--resume), and average the gradients as DistributedDataParallel does.
"""
import os
from contextlib import nullcontext
from types import SimpleNamespace
import torch
import torch.distributed as dist
from support.cli import Fail


def processes():
    """torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; a plain `python train.py` is process 0 of 1.
    On CUDA: TF32 matmuls and bf16 autocast."""
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    autocast = torch.autocast("cuda", torch.bfloat16) if cuda else nullcontext()
    log = print if rank == 0 else (lambda *a, **k: None)
    host = dist.new_group(backend="gloo") if world > 1 else None   # small messages between CPUs
    return SimpleNamespace(rank=rank, world=world, cuda=cuda, device=device, lock=None,
                           autocast=autocast, log=log, host=host)


def agree(value, proc):
    """The largest value over all processes, so that every process takes the same branch."""
    t = torch.tensor(float(value))
    if proc.world > 1:
        dist.all_reduce(t, dist.ReduceOp.MAX, group=proc.host)  # on the CPU: no wait for the GPU
    return t.item()


def in_first(proc, fn, *args):
    """fn(*args) in process 0 alone (a checkpoint, a grid); a mistake it finds (Fail: a full disk,
    NaN samples) stops every process with the same line. Returns fn's result in process 0."""
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
    """fn(*args) in process 0, then in the others (process 0 decodes and caches the images once; the
    others read its cache). A mistake found by process 0 stops every process (in_first)."""
    result = in_first(proc, fn, *args)
    return result if proc.rank == 0 else fn(*args)


def rng_states(proc):
    """The states of every process's random number generators (CPU, and CUDA), gathered in process
    0 (None in the others) for the checkpoint: each process draws its own noise and flips."""
    cuda = torch.cuda.get_rng_state(proc.device) if proc.cuda else None
    mine = dict(cpu=torch.get_rng_state(), cuda=cuda)
    if proc.world == 1:
        return [mine]
    every = [None] * proc.world if proc.rank == 0 else None
    dist.gather_object(mine, every, dst=0, group=proc.host)
    return every


def own_noise(proc, seed, states=None, step=0):
    """Each process's random numbers its own, once the model is built (from one seed in all): with
    the states of a checkpoint (rng_states), this process's as it left them; else process k > 0
    seeded seed + 1000 k, and process 0 going on with the seed's."""
    if isinstance(states, dict):                            # a checkpoint of process 0's alone
        states = [states]
    if states and proc.rank < len(states):
        torch.set_rng_state(states[proc.rank]["cpu"])
        if proc.cuda and states[proc.rank]["cuda"] is not None:
            torch.cuda.set_rng_state(states[proc.rank]["cuda"], proc.device)
    elif proc.rank > 0:                                     # fresh, or a process the run lacked
        torch.manual_seed(seed + 1000 * proc.rank + step)


def all_reduce_grads(params, world):
    """Data parallel: average the gradients of all processes, as DistributedDataParallel does.
    Written out because the models are driven through loss / d_loss / g_loss, and DDP hooks only
    forward()."""
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.flatten() for g in grads])             # one message, not one per tensor
    dist.all_reduce(flat)
    for g, f in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(f.view_as(g) / world)


def end(proc):
    """The lock on --out released, the process group closed."""
    if proc.lock:
        proc.lock.close()
    if proc.world > 1:
        dist.destroy_process_group()

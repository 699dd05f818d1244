"""stableloss.torch inside DistributedDataParallel: two processes on the gloo backend (localhost, world
size 2, each half the batch) train a small model with stableloss.torch.cross_entropy and end with the
parameters of one process trained on the whole batch, within float32 rounding.

Runs only where torch is installed (and its distributed package is available).
"""

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

#: One training run: ``world`` processes (1: plain, no DDP) each take their share of the batch; rank 0
#: saves the final parameters to argv[1].  The processes meet through the file argv[2] (no port to pick).
TRAIN = """
import os, sys
import torch
import stableloss.torch as slt

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
torch.set_num_threads(1)
torch.manual_seed(0)  # the same initial model and data in every process
model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.Tanh(), torch.nn.Linear(16, 7))
x = torch.randn(32, 10)
y = torch.randint(0, 7, (32,))
if world > 1:
    torch.distributed.init_process_group("gloo", init_method="file://" + sys.argv[2], rank=rank, world_size=world)
    model = torch.nn.parallel.DistributedDataParallel(model)
share = slice(rank * 32 // world, (rank + 1) * 32 // world)
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
for step in range(5):
    optimizer.zero_grad()
    loss = slt.cross_entropy(model(x[share]), y[share], label_smoothing=0.1)
    loss.backward()  # DDP averages the gradients of the two halves: the gradient of the whole batch's mean
    optimizer.step()
if rank == 0:
    torch.save({k: v.detach() for k, v in model.state_dict().items()}, sys.argv[1])
if world > 1:
    torch.distributed.destroy_process_group()
"""


def _train(world, path):
    env = {**os.environ, "WORLD_SIZE": str(world), "OMP_NUM_THREADS": "1"}
    rendezvous = path.with_suffix(".rendezvous")
    processes = [subprocess.Popen([sys.executable, "-c", TRAIN, str(path), str(rendezvous)],
                                  env={**env, "RANK": str(rank)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
                 for rank in range(world)]
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
    return {k.removeprefix("module."): v for k, v in torch.load(path).items()}


def test_ddp_two_processes_match_one(tmp_path):
    single = _train(1, tmp_path / "single.pt")
    distributed = _train(2, tmp_path / "ddp.pt")
    assert single.keys() == distributed.keys()
    for name, value in single.items():
        torch.testing.assert_close(distributed[name], value, rtol=1e-5, atol=1e-6, msg=name)
        assert not torch.equal(value, torch.zeros_like(value))

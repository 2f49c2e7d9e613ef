"""``all_gather_batch`` in one process, and its bad arguments.

Its multi-process semantics (the loss and the DDP-averaged gradients equal one process's on the
concatenated batch; uneven shards) are tested in ``test_integration.py``, which shares one spawn
of 2 gloo processes with the DistributedDataParallel matrix.
"""
import pytest
import torch

from torchtopo._distributed import all_gather_batch, is_distributed


def test_single_process_is_the_identity():
    assert not is_distributed()
    x = torch.randn(4, 3, requires_grad=True)
    assert all_gather_batch(x) is x
    assert all_gather_batch(x, dim=-1) is x


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"all_gather_batch: x must be a torch.Tensor, got list"):
        all_gather_batch([1.0, 2.0])
    with pytest.raises(TypeError, match=r"dim must be an int, got float"):
        all_gather_batch(torch.zeros(2, 3), dim=0.0)
    with pytest.raises(ValueError, match=r"dim must be in \[-2, 1\] for x of shape \(2, 3\), got 2"):
        all_gather_batch(torch.zeros(2, 3), dim=2)
    with pytest.raises(ValueError, match=r"dim must be in .*got 0"):
        all_gather_batch(torch.tensor(1.0))

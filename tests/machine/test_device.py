"""Device selection for the jobs that may use a GPU (training, quantization)."""

import pytest
import torch

from quantbench.machine.device import resolve_device


def test_cuda_request_without_gpu_is_an_error():
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"

"""The fallback ladder training runs on: each step says where it trains and with which
parameters, and a LightGBM error from the GPU moves a fit to the next step, down to the CPU.
Which step comes first is the device decision's (numerflow.gpu.decision)."""

from __future__ import annotations

import lightgbm
from pydantic import BaseModel

from numerflow.config.models import LightGBMParams

GPU_ERROR_MARKERS = (
    "opencl",
    "cuda",
    "gpu",
    "out of memory",
    "cl_mem_object_allocation_failure",
    "cl_out_of_resources",
    "bad_alloc",
    "memory allocation",
)


class FallbackStep(BaseModel):
    """One step of the fallback ladder: where it trains and with what."""

    name: str  # gpu, cuda or cpu; manual or manual-cpu for model_params.yaml as written
    params: LightGBMParams


def is_gpu_error(exc: BaseException) -> bool:
    """LightGBM errors from the GPU learner: no device, driver failures, out of memory."""
    if isinstance(exc, MemoryError):
        return True
    if not isinstance(exc, lightgbm.basic.LightGBMError):
        return False
    message = str(exc).lower()
    return any(marker in message for marker in GPU_ERROR_MARKERS)

"""Which LightGBM errors come from the GPU (and so step a fold down to the next tier)."""

from __future__ import annotations

import lightgbm

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


def is_gpu_error(exc: BaseException) -> bool:
    """LightGBM errors from the GPU learner: no device, driver failures, out of memory."""
    if isinstance(exc, MemoryError):
        return True
    if not isinstance(exc, lightgbm.basic.LightGBMError):
        return False
    message = str(exc).lower()
    return any(marker in message for marker in GPU_ERROR_MARKERS)

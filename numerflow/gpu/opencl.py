"""List the OpenCL platforms and devices exactly as LightGBM numbers them.

LightGBM's library contains its own OpenCL ICD loader (the PyPI wheel defines `clGetPlatformIDs`
and friends and reads `/etc/OpenCL/vendors`: `nm -D` on lib_lightgbm.so lists them), so asking that library
gives LightGBM's own `gpu_platform_id`/`gpu_device_id` numbering with no extra dependency
(pyopencl would bring a second loader that may order platforms differently). Loading a vendor
driver can crash the process, so the capability check runs this module in a child:
`python -m numerflow.gpu.opencl` prints the platforms as JSON.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

from numerflow.gpu.numbering import OpenClDevice, OpenClPlatform

CL_SUCCESS = 0
CL_PLATFORM_NOT_FOUND_KHR = -1001  # the loader found no vendor driver: no platforms
CL_PLATFORM_NAME = 0x0902
CL_PLATFORM_VENDOR = 0x0903
CL_DEVICE_TYPE_ALL = 0xFFFFFFFF  # LightGBM numbers a platform's devices of every type
CL_DEVICE_TYPE = 0x1000
CL_DEVICE_NAME = 0x102B
CL_DEVICE_VENDOR = 0x102C
CL_DEVICE_PCI_BUS_ID_NV = 0x4008  # NVIDIA's cl_nv_device_attribute_query extension
DEVICE_TYPES = {1 << 1: "cpu", 1 << 2: "gpu", 1 << 3: "accelerator"}


class OpenClError(RuntimeError):
    """The OpenCL loader answered with an error code."""


def lightgbm_library() -> Path:
    import lightgbm

    folder = Path(lightgbm.__file__).parent / "lib"
    return next(folder.glob("lib_lightgbm.*"), folder / "lib_lightgbm.so")


def list_platforms(library: Path | None = None) -> list[OpenClPlatform]:
    """Every OpenCL platform and its devices, in LightGBM's order; [] when no driver is registered."""
    cl = ctypes.CDLL(str(library or lightgbm_library()))
    count = ctypes.c_uint32(0)
    status = cl.clGetPlatformIDs(0, None, ctypes.byref(count))
    if status == CL_PLATFORM_NOT_FOUND_KHR or count.value == 0:
        return []
    _check(status, "clGetPlatformIDs")
    ids = (ctypes.c_void_p * count.value)()
    _check(cl.clGetPlatformIDs(count.value, ids, None), "clGetPlatformIDs")
    return [
        OpenClPlatform(
            name=_text(cl.clGetPlatformInfo, platform, CL_PLATFORM_NAME),
            vendor=_text(cl.clGetPlatformInfo, platform, CL_PLATFORM_VENDOR),
            devices=_devices(cl, platform),
        )
        for platform in ids
    ]


def _devices(cl: ctypes.CDLL, platform: int) -> list[OpenClDevice]:
    count = ctypes.c_uint32(0)
    if cl.clGetDeviceIDs(ctypes.c_void_p(platform), ctypes.c_uint64(CL_DEVICE_TYPE_ALL), 0, None,
                         ctypes.byref(count)) != CL_SUCCESS:  # fmt: skip
        return []  # CL_DEVICE_NOT_FOUND: a platform with no device
    ids = (ctypes.c_void_p * count.value)()
    _check(
        cl.clGetDeviceIDs(ctypes.c_void_p(platform), ctypes.c_uint64(CL_DEVICE_TYPE_ALL), count, ids, None),
        "clGetDeviceIDs",
    )
    devices = []
    for device in ids:
        kind = _number(cl, device, CL_DEVICE_TYPE, ctypes.c_uint64)
        devices.append(
            OpenClDevice(
                name=_text(cl.clGetDeviceInfo, device, CL_DEVICE_NAME),
                vendor=_text(cl.clGetDeviceInfo, device, CL_DEVICE_VENDOR),
                kind=DEVICE_TYPES.get(kind or 0, "other"),
                pci_bus=_number(cl, device, CL_DEVICE_PCI_BUS_ID_NV, ctypes.c_uint32),
            )
        )
    return devices


def _text(function: ctypes._CFuncPtr, handle: int, param: int) -> str:
    size = ctypes.c_size_t(0)
    _check(function(ctypes.c_void_p(handle), param, 0, None, ctypes.byref(size)), "get info size")
    buffer = ctypes.create_string_buffer(size.value)
    _check(function(ctypes.c_void_p(handle), param, size, buffer, None), "get info")
    return buffer.value.decode(errors="replace").strip()


def _number(cl: ctypes.CDLL, device: int, param: int, kind: type) -> int | None:
    """A numeric device property; None where the driver does not have it (e.g. NVIDIA's PCI bus)."""
    value = kind(0)
    status = cl.clGetDeviceInfo(
        ctypes.c_void_p(device), param, ctypes.sizeof(value), ctypes.byref(value), None
    )
    return int(value.value) if status == CL_SUCCESS else None


def _check(status: int, call: str) -> None:
    if status != CL_SUCCESS:
        raise OpenClError(f"{call} returned OpenCL error {status}")


if __name__ == "__main__":
    print(json.dumps([platform.model_dump() for platform in list_platforms()]))

"""Numerai's model-upload images: for each Python version Numerai runs, the image's name and the
library versions it installs (`pins.json`, from the poetry.lock files of numerai/numerai-predict,
which its Docker images install), so nothing is fetched to learn them. A pickle only loads in
the Python version that wrote it, so a model_upload slot needs a Python listed here."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from importlib.resources import files


class UnsupportedPython(RuntimeError):
    """Numerai runs no image for this Python version."""


@dataclass(frozen=True)
class Image:
    python: str  # "3.11"
    docker_image: str  # the name Numerai lists it under, e.g. "Python 3.11"
    packages: dict[str, str]

    def requirements(self) -> list[str]:
        return [f"{name}=={version}" for name, version in sorted(self.packages.items())]

    def digest(self) -> str:
        payload = json.dumps({"python": self.python, "packages": self.packages}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def images() -> dict[str, Image]:
    table = json.loads(files("numerflow.numerai").joinpath("pins.json").read_text(encoding="utf-8"))
    return {
        version: Image(version, entry["docker_image"], dict(entry["packages"]))
        for version, entry in table["images"].items()
    }


def local_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def image_for(python: str | None = None) -> Image:
    """The image of `python` (default: this interpreter's minor version); refused when Numerai has none."""
    python = python or local_python()
    known = images()
    if python not in known:
        raise UnsupportedPython(
            f"Python {python}: Numerai runs uploaded models only on Python {', '.join(sorted(known))}, and a "
            "pickle only loads in the Python version that wrote it: build the pickle with one of those "
            "(e.g. `uv venv --python 3.11`)"
        )
    return known[python]

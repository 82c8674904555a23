"""Numerai credentials as a Prefect block: stored encrypted by the server, shown masked."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from numerflow.numerai.errors import NumeraiError


class NumeraiCredentials(Block):
    """Numerai API key (public id + secret key) and the ids of the models to submit as."""

    _block_type_name = "Numerai Credentials"
    _block_type_slug = "numerai-credentials"
    _description = "Numerai API key and model ids for numerflow."

    public_id: SecretStr = Field(description="Numerai API public id")
    secret_key: SecretStr = Field(description="Numerai API secret key")
    model_ids: dict[str, str] = Field(default_factory=dict, description="model name -> model id")


class MissingCredentials(NumeraiError):
    """No credentials block of that name on the Prefect server."""


def load_credentials(block_name: str) -> NumeraiCredentials:
    """The named credentials block, or an error that says how to create it."""
    try:
        return NumeraiCredentials.load(block_name)
    except ValueError as exc:
        if "Unable to find block document" not in str(exc):
            raise
        raise MissingCredentials(
            f"training.yaml numerai.credentials_block: no block numerai-credentials/{block_name} on the "
            f"Prefect server; save your API key with `uv run numerflow setup credentials --block-name "
            f"{block_name}`"
        ) from None

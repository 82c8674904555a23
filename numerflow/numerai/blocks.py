"""Numerai credentials as a Prefect block: stored encrypted by the server, shown masked."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class NumeraiCredentials(Block):
    """Numerai API key (public id + secret key) and the ids of the models to submit as."""

    _block_type_name = "Numerai Credentials"
    _block_type_slug = "numerai-credentials"
    _description = "Numerai API key and model ids for numerflow."

    public_id: SecretStr = Field(description="Numerai API public id")
    secret_key: SecretStr = Field(description="Numerai API secret key")
    model_ids: dict[str, str] = Field(default_factory=dict, description="model name -> model id")

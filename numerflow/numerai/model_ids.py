"""The models to submit as, from `NUMERAI_MODEL_ID` or `--model`: `NAME=ID` pairs or bare ids.

The old scripts (and Numerai's dashboard) give a bare model id; numerflow keys models by name
(`training.yaml` lists names), so a bare id is looked up on the account to learn its name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from numerflow.numerai.client import NumeraiClient
from numerflow.numerai.errors import NumeraiError

MODEL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
EXAMPLE_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class ModelEntries:
    named: dict[str, str]  # model name -> id, as given
    bare: list[str]  # ids whose names the account knows


def split_model_ids(value: str) -> list[str]:
    """`NUMERAI_MODEL_ID`'s entries: one bare id, or NAME=ID pairs separated by commas."""
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def parse_model_entries(entries: Iterable[str]) -> ModelEntries:
    """Sort entries into `NAME=ID` pairs and bare ids; anything else is refused, naming the entry."""
    named: dict[str, str] = {}
    bare: list[str] = []
    for entry in entries:
        name, sep, model_id = (part.strip() for part in entry.partition("="))
        if sep and name and model_id:
            named[name] = model_id
        elif not sep and MODEL_ID.fullmatch(name):
            bare.append(name.lower())
        else:
            raise ValueError(
                f"model {entry!r} (NUMERAI_MODEL_ID or --model): expected NAME=ID or a bare model id, "
                f"e.g. my_model={EXAMPLE_ID} or {EXAMPLE_ID}"
            )
    return ModelEntries(named, bare)


def name_bare_ids(bare: list[str], account: dict[str, str]) -> dict[str, str]:
    """`{name: id}` for bare ids, named from the account's `{name: id}`; ids not on it are refused."""
    names = {model_id.lower(): name for name, model_id in account.items()}
    foreign = [model_id for model_id in bare if model_id not in names]
    if foreign:
        raise NumeraiError(
            f"model id {', '.join(foreign)} (NUMERAI_MODEL_ID or --model) is not a model of this Numerai "
            f"account, which has {sorted(account) or 'no models'}: copy the id from numer.ai -> Models, "
            "or check that the API key belongs to the account that owns the model"
        )
    return {names[model_id]: model_id for model_id in bare}


def resolve_model_entries(
    entries: Iterable[str], account_models: Callable[[], dict[str, str]]
) -> dict[str, str]:
    """`{name: id}` of every entry; the account (`account_models()`) is asked only for bare ids."""
    parsed = parse_model_entries(entries)
    if not parsed.bare:
        return parsed.named
    return {**parsed.named, **name_bare_ids(parsed.bare, account_models())}


def resolve_model_ids(models: list[str], known: dict[str, str], client: NumeraiClient) -> dict[str, str]:
    """Model ids from the credentials block, checked against (and completed from) the account.

    Asking the account first also checks the API key, so bad credentials fail in seconds,
    before any prediction work.
    """
    account = client.model_ids()
    ids = {m: known.get(m) or account.get(m) for m in models}
    missing = [m for m, model_id in ids.items() if not model_id]
    if missing:
        raise NumeraiError(
            f"no model id for {missing}: add them to the credentials block "
            "(`numerflow setup credentials --model NAME=ID`) or check the model names in training.yaml"
        )
    foreign = [m for m, model_id in ids.items() if model_id not in account.values()]
    if foreign:
        raise NumeraiError(f"the model ids of {foreign} do not belong to this Numerai account")
    return {m: str(model_id) for m, model_id in ids.items()}

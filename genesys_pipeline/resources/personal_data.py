"""`PersonalDataProtection`: what the pipeline keeps, hashes or drops of the personal data it reads.

A field of `GenesysResource` (`personal_data`): the policy applies to everything read from Genesys
Cloud, by the extraction and by the dimension loads alike. Unset means every class is kept as the API
sends it. In a code location the settings `GENESYS_PII_*` fill it (defs/resources.py), and the hash key
is the secret `GENESYS_PII_HASH_KEY`, given as a `dg.EnvVar`: resolved when a run starts, never shown.

    GenesysResource(..., personal_data=PersonalDataProtection(
        phone_numbers="hash", email_addresses="hash", customer_names="drop",
        hash_key=dg.EnvVar("GENESYS_PII_HASH_KEY"),
    ))
"""

from __future__ import annotations

from typing import Any, Optional

import dagster as dg
from pydantic import ConfigDict, Field, model_validator

from genesys_pipeline.contracts.personal_data import (
    CLASSES,
    HASH_KEY_VARIABLE,
    MODES,
    PersonalDataPolicy,
)


def _mode_field(what: str) -> Any:
    return Field(default="keep", description=f"{what}: keep, hash or drop.")


class PersonalDataProtection(dg.ConfigurableResource):
    """What happens to each class of personal data (customers' phone numbers, e-mail addresses and
    names, free text, employees' e-mail addresses): kept, hashed (HMAC-SHA256 under the secret hash key,
    so joins still work) or dropped, before anything is written. docs/privacy.md lists the fields of
    each class."""

    # Validation errors must not echo input values: they would include the hash key.
    model_config = ConfigDict(hide_input_in_errors=True)

    phone_numbers: str = _mode_field("Customers' phone numbers and other non-e-mail contact addresses")
    email_addresses: str = _mode_field("The addresses of e-mail sessions")
    customer_names: str = _mode_field("Names of customers and external parties")
    employee_emails: str = _mode_field("Users' e-mail addresses and user names (DIM_USERS)")
    free_text: str = _mode_field("Participant attribute values, wrap-up notes, e-mail subjects")
    hash_key: Optional[str] = Field(
        default=None,
        repr=False,
        description=f"The HMAC key (use dg.EnvVar('{HASH_KEY_VARIABLE}')), at least 32 characters; required "
        "when any class is hashed. Never logged or shown. Changing it changes every hash.",
    )

    @model_validator(mode="before")
    @classmethod
    def _validate_modes(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for personal_class in CLASSES:
                value = data.get(personal_class.name, "keep")
                if value not in MODES and not isinstance(value, dg.EnvVar):
                    raise ValueError(
                        f"personal_data.{personal_class.name} ({personal_class.variable}) must be one of "
                        f"{', '.join(MODES)}, got {value!r}"
                    )
        return data

    def policy(self) -> PersonalDataPolicy:
        return PersonalDataPolicy(**{c.name: getattr(self, c.name) for c in CLASSES})

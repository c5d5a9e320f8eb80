"""Path and header parameters of the routes, with the shapes the code checks written into the OpenAPI.

The id patterns are documented, not enforced by FastAPI: an id of the wrong shape answers 404
like an unknown one (so a client learns nothing from its shape), and a bad `Idempotency-Key`
answers 422 `invalid_idempotency_key` from `services.idempotency.check_key`.
"""

import re
from typing import Annotated

from fastapi import Header, Path

from heimdex_api.services.idempotency import MAX_KEY_LENGTH
from heimdex_pipeline.media.fingerprint import ASSET_ID_PATTERN

RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

AssetIdPath = Annotated[str, Path(
    description="`v_` and 32 hex digits; any other id answers 404 `asset_not_found`.",
    json_schema_extra={"pattern": ASSET_ID_PATTERN.pattern})]
JobIdPath = Annotated[str, Path(
    description="A Dagster run id (a UUID); any other id answers 404 `job_not_found`.",
    json_schema_extra={"pattern": RUN_ID_PATTERN.pattern})]
# Delivery ids are the outbox's 64-bit keys: a larger number is refused (422) before it reaches the database,
# which would fail on it.
MAX_DELIVERY_ID = 2**63 - 1
DeliveryIdPath = Annotated[int, Path(
    ge=1, le=MAX_DELIVERY_ID,
    description="A `delivery_id` from the endpoint's deliveries; another endpoint's answers 404 `delivery_not_found`.")]
WebhookIdPath = Annotated[str, Path(
    description="`wh_` and 24 hex digits; any other id answers 404 `webhook_not_found`.",
    json_schema_extra={"pattern": "^wh_[0-9a-f]{24}$"})]
IdempotencyKeyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key",
    description=f"1 to {MAX_KEY_LENGTH} printable ASCII characters without space (else 422 "
                "`invalid_idempotency_key`): the same key and body answer the first answer again; "
                "the same key with another body answers 409 `idempotency_conflict`.",
    json_schema_extra={"minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[!-~]+$"})]

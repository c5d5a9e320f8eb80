"""A schemathesis check for Heimdex: a request the OpenAPI calls valid never fails validation.

schemathesis's own `positive_data_acceptance` fails any 422 to such a request; this check says
which disagreement it is when the server's validation refuses what the document allows.
Loaded by `schemathesis run` (the `hooks` of schemathesis.toml) and by tests/api/test_openapi.py.
"""

import schemathesis
from schemathesis import Case, CheckContext, Response


@schemathesis.check
def valid_data_passes_validation(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Fail when a request generated from the schema as valid answers 422 `validation_error`."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    body = response.json()
    if isinstance(body, dict) and body.get("error") == "validation_error":
        raise AssertionError(f"the server's validation refused what the document allows: {body.get('detail')}")
    return None

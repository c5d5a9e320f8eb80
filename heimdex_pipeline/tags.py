"""Names of the tags Heimdex puts on its Dagster runs; the pipeline and the API both read them here."""

ORG_TAG = "heimdex/org_id"
TYPE_TAG = "heimdex/job_type"
ORIGIN_TAG = "heimdex/origin"
PARTITION_TAG = "dagster/partition"


def run_tags(org_id: str, job_type: str, origin: str) -> dict[str, str]:
    """The tags of a run of one org's video: who owns it, which Heimdex job it is, who started it."""
    return {ORG_TAG: org_id, TYPE_TAG: job_type, ORIGIN_TAG: origin}

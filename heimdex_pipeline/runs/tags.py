"""Names of the tags Heimdex puts on its Dagster runs; the pipeline and the API both read them here."""

ORG_TAG = "heimdex/org_id"
TYPE_TAG = "heimdex/job_type"
ORIGIN_TAG = "heimdex/origin"
PARTITION_TAG = "dagster/partition"
# Dagster's own tags of a run retried as a new run (as its run retries set them), so that the web
# UI shows the retry in the first run's lineage.
PARENT_RUN_TAG = "dagster/parent_run_id"
ROOT_RUN_TAG = "dagster/root_run_id"
RETRY_NUMBER_TAG = "dagster/retry_number"
# A run the API submitted, by the submission's own id: the API finds the run by it when the
# webserver made it without answering in time.
SUBMISSION_TAG = "heimdex/submission"


def run_tags(org_id: str, job_type: str, origin: str) -> dict[str, str]:
    """The tags of a run of one org's video: who owns it, which Heimdex job it is, who started it."""
    return {ORG_TAG: org_id, TYPE_TAG: job_type, ORIGIN_TAG: origin}

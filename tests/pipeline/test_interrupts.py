"""An interrupt of a run (Ctrl-C, SIGTERM to run.sh, a run terminated in the UI) stops its steps for good,
wherever in a step it lands: in the step's own code, or in Dagster's code just around it, where
Dagster's retry policy would otherwise start the step over.

The interrupt is what Dagster's SIGINT handler raises in the run's thread while a step runs
(`DagsterExecutionInterruptedError`), raised here at the chosen place of a real in-process run.
"""

import functools
from collections.abc import Callable
from typing import Any

import pytest
from dagster import (
    AssetExecutionContext,
    DagsterEventType,
    DagsterExecutionInterruptedError,
    DagsterInstance,
    RetryPolicy,
    asset,
    materialize,
)

from heimdex_pipeline.assets.steps import stops_when_interrupted

ATTEMPTS: list[int] = []


def _interrupted_first(step: Callable[..., Any]) -> Callable[..., Any]:
    """On the step's first attempt, the interrupt lands before the step's code is called (in Dagster's
    share of the step, as far as `stops_when_interrupted` can tell)."""

    @functools.wraps(step)
    def run(context: AssetExecutionContext) -> Any:
        if context.retry_number == 0:
            raise DagsterExecutionInterruptedError()
        return step(context)

    return run


@asset(retry_policy=RetryPolicy(max_retries=2))
@_interrupted_first
@stops_when_interrupted
def interrupted_before_its_code(context: AssetExecutionContext) -> int:
    ATTEMPTS.append(context.retry_number)
    return 1


@asset(retry_policy=RetryPolicy(max_retries=2))
@stops_when_interrupted
def interrupted_in_its_code(context: AssetExecutionContext) -> int:
    ATTEMPTS.append(context.retry_number)
    raise DagsterExecutionInterruptedError()


@pytest.fixture(autouse=True)
def _no_attempts() -> None:
    ATTEMPTS.clear()


def _failure(instance: DagsterInstance, run_id: str) -> str:
    [failure] = instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
    return failure.dagster_event.step_failure_data.error.message


def test_an_interrupt_in_the_steps_code_fails_it_without_a_retry(instance: DagsterInstance) -> None:
    result = materialize([interrupted_in_its_code], instance=instance, raise_on_error=False)
    assert not result.success
    assert ATTEMPTS == [0]
    assert instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY) == []
    assert "interrupted: the run was stopped" in _failure(instance, result.run_id)


def test_an_interrupt_around_the_steps_code_stops_dagsters_retry_at_its_start(instance: DagsterInstance) -> None:
    result = materialize([interrupted_before_its_code], instance=instance, raise_on_error=False)
    assert not result.success
    # Dagster made the interrupt a retry; the retry stopped before the step's code ran.
    assert len(instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)) == 1
    assert ATTEMPTS == []
    assert "interrupted: the run was stopped" in _failure(instance, result.run_id)

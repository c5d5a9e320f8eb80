"""Media work at a lower CPU priority: the thread that runs the steps, and what it starts, yield the
processor; the other threads of the process (the API's, beside an in-process run) keep theirs."""

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from dagster import build_init_resource_context

from heimdex_pipeline.core.settings import PipelineSettings
from heimdex_pipeline.media.priority import lower_thread_priority
from heimdex_pipeline.resources import MediaWork


def _own_priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _in_a_thread(work: Callable[[], Any]) -> Any:
    answer: list[Any] = []
    thread = threading.Thread(target=lambda: answer.append(work()))
    thread.start()
    thread.join()
    return answer[0]


def test_the_thread_and_the_processes_it_starts_run_lower_and_the_others_keep_theirs() -> None:
    before = _own_priority()

    def work() -> dict[str, int]:
        # 19, the lowest: whatever this process's threads were at already, it is a change.
        lowered = lower_thread_priority(19)
        child = subprocess.run([sys.executable, "-c", "import os; print(os.nice(0))"], capture_output=True,
                               text=True, check=True)
        return {"answered": lowered, "thread": _own_priority(), "child": int(child.stdout),
                "asked_higher": lower_thread_priority(3)}

    assert _in_a_thread(work) == {"answered": 19, "thread": 19, "child": 19, "asked_higher": 19}
    assert _own_priority() == before


def test_the_media_resource_lowers_the_thread_that_runs_the_steps_to_the_settings_value() -> None:
    settings = PipelineSettings(media_niceness=19)

    def work() -> int:
        MediaWork.from_settings(settings).setup_for_execution(build_init_resource_context())
        return _own_priority()

    assert _in_a_thread(work) == 19
    assert PipelineSettings().media_niceness == 10

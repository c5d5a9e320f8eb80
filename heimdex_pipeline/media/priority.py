"""CPU priority of media work: decoding yields the processor to what answers people (the API, the
web UI), so that a burst of ingests slows itself rather than every request."""

import os
import threading


def lower_thread_priority(niceness: int) -> int:
    """Raise the calling thread's nice value to at least `niceness` (0..19), and answer the value it has.

    On Linux the nice value belongs to a thread, and the threads and processes it starts later
    inherit it: the step's decoder threads and ffmpeg children run at it, while the other threads
    of the process (an API serving requests beside an in-process run) keep theirs. Never lowered
    here: that takes privileges, and a value set higher by the operator stands.
    """
    thread = threading.get_native_id()
    current = os.getpriority(os.PRIO_PROCESS, thread)
    if niceness > current:
        os.setpriority(os.PRIO_PROCESS, thread, niceness)
        current = niceness
    return current

"""A slow task for shutdown tests, registered on whichever Huey instance asks
(the server's in its process, the test's own handle on the same queue.db)."""

import time
from pathlib import Path


def register(huey):
    @huey.task(name="slow_task")
    def slow_task(seconds: float, marker: str) -> str:
        Path(marker + ".started").write_text("started")
        time.sleep(seconds)
        Path(marker + ".done").write_text("done")
        return "done"

    return slow_task

"""`run.py` exactly, plus one slow task registered on the same Huey instance, so a
test can put the server's worker in the middle of a task and then send SIGTERM."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import run  # noqa: E402
from jobs import huey  # noqa: E402
from tests.support import slow_tasks  # noqa: E402

slow_tasks.register(huey)

if __name__ == "__main__":
    sys.exit(run.main(sys.argv[1:]))

"""A terminal's Ctrl-C must not kill the embedded broker under the clean shutdown it starts.

Ctrl-C sends SIGINT to the whole foreground process group. `codegen-metrics run` then drains,
publishes the final windows and commits, all through the embedded broker; a broker in the same
group died with the signal and every final publish timed out (seen with `run --demo`).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time

# Stands in for `codegen-metrics run`: owns an embedded broker, and on SIGINT checks that the
# broker still accepts connections before stopping it.
SCRIPT = textwrap.dedent(
    """
    import signal, sys, time
    from actors.broker import HOST, EmbeddedBroker, _port_open

    broker = EmbeddedBroker().start()
    interrupted = []
    signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    print("ready", broker.port, flush=True)
    deadline = time.monotonic() + 60
    while not interrupted and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # what a shutdown takes: the broker must still be there
    alive = broker.running and _port_open(HOST, broker.port)
    print("interrupted" if interrupted else "timeout", "alive" if alive else "dead", flush=True)
    broker.stop()
    """
)


def test_the_embedded_broker_survives_a_ctrl_c_to_the_foreground_process_group() -> None:
    # A new session makes the script a process-group leader, as a shell makes a foreground job.
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready and child.stdout.readline().startswith("ready")
        time.sleep(0.5)
        os.killpg(child.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert out.split() == ["interrupted", "alive"], out
    assert child.returncode == 0

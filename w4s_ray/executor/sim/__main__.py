"""`python -m w4s_ray.executor.sim [options]`: the simulator as a process (used by the launcher)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from w4s_ray.config import SimConfig
from w4s_ray.env import apply_offline_defaults
from w4s_ray.errors import W4SError
from w4s_ray.executor.sim.options import add_sim_args, sim_config_from_args
from w4s_ray.executor.sim.server import serve


def _exit_with(parent: int) -> None:
    """Stop when the process that launched us is gone (it was killed before it could stop us):
    an orphaned simulator would hold its port and CPU until someone noticed."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    apply_offline_defaults()

    parser = argparse.ArgumentParser(prog="python -m w4s_ray.executor.sim")
    add_sim_args(parser)
    parser.add_argument("--exit-with-parent", type=int, default=None, metavar="PID",
                        help="stop when process PID (our parent) is gone (the launcher sets it)")
    args = parser.parse_args(argv)
    if args.exit_with_parent is not None:
        _exit_with(args.exit_with_parent)
    try:
        serve(sim_config_from_args(SimConfig(), args), args.data_dir, args.items_file)
    except W4SError as exc:
        print(f"w4s: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

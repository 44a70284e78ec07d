"""`python -m w4s_ray.executor.sim [options]`: the simulator as a process (used by the launcher)."""

from __future__ import annotations

import argparse
import sys

from w4s_ray.config import SimConfig
from w4s_ray.env import apply_offline_defaults
from w4s_ray.errors import W4SError
from w4s_ray.executor.sim.options import add_sim_args, sim_config_from_args
from w4s_ray.executor.sim.server import serve


def main(argv: list[str] | None = None) -> int:
    apply_offline_defaults()

    parser = argparse.ArgumentParser(prog="python -m w4s_ray.executor.sim")
    add_sim_args(parser)
    args = parser.parse_args(argv)
    try:
        serve(sim_config_from_args(SimConfig(), args), args.data_dir, args.items_file)
    except W4SError as exc:
        print(f"w4s: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

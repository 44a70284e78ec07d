"""`w4s report RUN_DIR`: regenerate report.md and curve.png from a run directory's files."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="regenerate report.md + curve.png for an optimize or collect run dir",
    )
    p.add_argument("run_dir", help="a directory written by `w4s optimize` or `w4s collect`")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from w4s_ray import storage
    from w4s_ray.rlao.report import write_report

    with storage.staged(args.run_dir, what="run dir") as st:  # a URI: pulled, rewritten, pushed
        path = write_report(st.path)
    print(storage.join(storage.display(args.run_dir), path.name) if st.remote else path)
    return 0

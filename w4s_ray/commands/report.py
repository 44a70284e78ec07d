"""`w4s report DIR`: regenerate the report of any run directory (optimize, collect, sweep,
train, compare, ADAS/AFlow search) from its files; the kind is recognised from the files
(`w4s_ray.reports`)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="regenerate the report + plots of any run directory",
        description="Write the markdown report and PNG plots of a run directory again from its "
                    "files: optimize / collect (report.md, curve.png), sweep (sweep_report.md, "
                    "sweep_*.png), train (train_summary.md, loss.png), compare (compare.md, "
                    "compare.png), ADAS/AFlow search (report.md, curve.png). Nothing runs.",
    )
    p.add_argument("run_dir", metavar="DIR", help="a directory written by a w4s stage")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from w4s_ray import api, storage

    with storage.staged(args.run_dir, what="run dir") as st:  # a URI: pulled, rewritten, pushed
        kind, path = api.report(st.path)
    where = storage.join(storage.display(args.run_dir), path.name) if st.remote else path
    print(f"{kind} report: {where}")
    return 0

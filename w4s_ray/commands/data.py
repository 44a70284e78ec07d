"""`w4s data list|verify|fetch`: the benchmark data directory.

- `list`: one row per benchmark (kind, valid/test sizes, files, split convention, file status).
- `verify`: every manifest file ok / MISSING / MISMATCH; exit 1 unless all are ok.
- `fetch`: download missing or mismatching files from their recorded upstream commits
  (sha256-checked, write-then-rename); offline it stops with one line and exit 2.

The data directory is `cfg.data_dir()`: `--set data.dir=...`, else $W4S_DATA_DIR, else ./data
(`fetch --out DIR` writes to DIR).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from w4s_ray.cli import add_config_args, add_out_arg

    p = sub.add_parser("data", help="list, verify or fetch the benchmark data files",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="data_verb", metavar="{list,verify,fetch}")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    pl = verbs.add_parser("list", help="benchmarks, kinds, split sizes and their files")
    add_config_args(pl)
    # Kept so scripts that pass it keep working: every registered benchmark is listed anyway.
    pl.add_argument("--all", action="store_true", help="list every benchmark (the default)")
    pl.set_defaults(func=cmd_list)

    pv = verbs.add_parser("verify", help="check every data file against the manifest sha256")
    add_config_args(pv)
    pv.set_defaults(func=cmd_verify)

    pf = verbs.add_parser("fetch", help="download missing/mismatching files from upstream")
    add_config_args(pf)
    pf.add_argument("--only", action="append", default=None, metavar="PATH",
                    help="fetch only this manifest path (repeatable), e.g. svamp/SVAMP.json")
    add_out_arg(pf, "data directory to fetch into (default: data.dir, else $W4S_DATA_DIR, "
                    "else ./data)")
    pf.add_argument("--fresh", "--force", dest="force", action="store_true",
                    help="re-download files that verify ok (--force is the older spelling)")
    pf.add_argument("--timeout", type=float, default=30.0, help="seconds per download")
    pf.set_defaults(func=cmd_fetch)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    fmt = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    lines = [fmt.format(*headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def _files_cell(files: tuple[str, ...]) -> str:
    if len(files) <= 3:
        return ", ".join(files)
    folder = files[0].split("/")[0]
    return f"{folder}/ ({len(files)} files)"


def cmd_list(args: argparse.Namespace) -> int:
    from w4s_ray.benchmarks import BENCHMARKS, list_benchmarks
    from w4s_ray.benchmarks import data as D

    root = args.cfg.data_dir()
    present = root.is_dir()
    rows = []
    for name in list_benchmarks():
        cls = BENCHMARKS[name]
        if present:
            statuses = D.verify(root, list(cls.files)).values()
            bad = [s for s in statuses if s != "ok"]
            status = "ok" if not bad else f"{len(bad)} {'/'.join(sorted(set(bad)))}"
        else:
            status = "no data dir"
        rows.append([name, cls.kind, str(cls.split_sizes["valid"]), str(cls.split_sizes["test"]),
                     _files_cell(cls.files), status])
    print(f"data dir: {root}")
    print(_table(["benchmark", "kind", "valid", "test", "files", "status"], rows))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from w4s_ray.benchmarks import data as D

    root = D.require_dir(args.cfg.data_dir())
    result = D.verify(root)
    for path, status in result.items():
        print(f"{'ok' if status == 'ok' else status.upper():8s} {path}")
    bad = sum(1 for s in result.values() if s != "ok")
    print(f"{len(result) - bad}/{len(result)} files ok in {root}")
    return 0 if bad == 0 else 1


def cmd_fetch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from w4s_ray.benchmarks import data as D

    root = Path(args.out).expanduser() if args.out else args.cfg.data_dir()
    todo = [e for e in D.manifest() if args.only is None or e.path in args.only]
    if args.only:
        unknown = sorted(set(args.only) - {e.path for e in D.manifest()})
        if unknown:
            from w4s_ray.errors import DataError

            raise DataError(f"--only {unknown[0]}: not a manifest path (see `w4s data verify`)")
    with tqdm(total=len(todo), desc="fetch", unit="file", file=sys.stderr) as bar:
        def progress(path: str, status: str) -> None:
            bar.set_postfix_str(path)
            bar.update(1)

        result = D.fetch(root, paths=[e.path for e in todo], timeout=args.timeout,
                         force=args.force, progress=progress)
    fetched = [p for p, s in result.items() if s == "fetched"]
    no_url = [p for p, s in result.items() if s == "no public URL"]
    print(f"{len(fetched)} fetched, {sum(s == 'ok' for s in result.values())} already ok"
          f"{f', {len(no_url)} without a public URL: ' + ', '.join(no_url) if no_url else ''}"
          f" in {root}")
    return 0 if not no_url else 1

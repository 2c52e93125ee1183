"""`python -m bench` (`make bench`): see `docs/benchmarks.md`."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import profiler, quota, quota_report, report, runner, slot_bench, steer


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput, accept latency and per-lead cost of the pipeline, next to the "
        "ceiling of the local stack itself. The last line printed is one JSON object.",
    )
    parser.add_argument("--leads", type=int, default=None, help="leads end to end (1000)")
    parser.add_argument(
        "--accept-requests", type=int, default=None, help="500-lead POSTs timed (20)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="end-to-end and ceiling runs taken in turn; the median ratio reports (3)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 200 leads, 5 accept requests, 1 round"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record the functions with py-spy into DIR and print hotspots (perturbs figures)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, metavar="DIR", help="keep state and logs in DIR"
    )
    parser.add_argument(
        "--quota",
        action="store_true",
        help="only the quota phase: Google's limits compressed tenfold, host A and host B",
    )
    parser.add_argument(
        "--quota-leads",
        type=int,
        default=None,
        metavar="N",
        help="host A's leads in the quota phase (1000; 200 with --quick)",
    )
    parser.add_argument(
        "--quota-timeout",
        type=float,
        default=None,
        metavar="S",
        help="stop waiting for host A after S seconds a run (600 plus 10 times the bound)",
    )
    parser.add_argument(
        "--quota-compression",
        type=float,
        default=quota.COMPRESSION,
        metavar="F",
        help="how many times faster than Google's clock the quota phase runs (10: a minute "
        "lasts 6 s); the bound and the sweeper's tick scale with it",
    )
    parser.add_argument(
        "--no-quota", action="store_true", help="skip the quota phase after the other phases"
    )
    parser.add_argument(
        "--steer",
        action="store_true",
        help="only the steering phase: pause, resume and cancel of a 2,000-lead run in flight, "
        "and the reads of watching a run",
    )
    parser.add_argument(
        "--no-steer", action="store_true", help="skip the steering phase after the other phases"
    )
    parser.add_argument(
        "--no-untold",
        action="store_true",
        help="skip the quota phase's second run (sandbox at half of what the pipeline was told)",
    )
    return parser


def quota_phase(args: argparse.Namespace, leads: int, say: Any) -> dict[str, Any]:
    """The quota phase's figures (told run, then untold run), on a stack of its own."""
    options = quota.QuotaOptions(
        leads=leads,
        untold=not args.no_untold,
        compression=args.quota_compression,
        settle_timeout_s=args.quota_timeout,
        progress=say,
    )
    root = Path(tempfile.mkdtemp(prefix="leadrun-quota-")) if args.keep is None else args.keep
    root.mkdir(parents=True, exist_ok=True)
    runs = quota.run(options, root / "quota")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return quota_report.summary(runs)


def steer_phase(args: argparse.Namespace, say: Any) -> dict[str, Any]:
    """The steering phase's figures, on a stack of its own."""
    root = Path(tempfile.mkdtemp(prefix="leadrun-steer-")) if args.keep is None else args.keep
    root.mkdir(parents=True, exist_ok=True)
    leads = 200 if args.quick else steer.STEER_LEADS
    watched = (20, 100) if args.quick else (100, 1000)
    figures = steer.run(root / "steer", leads, say, watched)
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return figures


def _run_phase(
    run: Callable[[], dict[str, Any]], table: Callable[[dict[str, Any]], str]
) -> dict[str, Any] | None:
    """A phase's figures, its table printed; None (said on stderr) if it could not run."""
    try:
        figures = run()
    except (runner.BenchError, RuntimeError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return None
    print(table(figures))
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run every phase and print the table, then the JSON line."""
    args = build_parser().parse_args(argv)
    leads = args.leads if args.leads is not None else (200 if args.quick else 1000)
    accept = args.accept_requests if args.accept_requests is not None else (5 if args.quick else 20)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    quota_leads = (
        args.quota_leads if args.quota_leads is not None else (200 if args.quick else 1000)
    )
    if leads < 1 or accept < 1 or rounds < 1 or quota_leads < 1 or args.quota_compression <= 0:
        print(
            "--leads, --accept-requests, --rounds, --quota-leads and --quota-compression must be "
            "positive",
            file=sys.stderr,
        )
        return 2

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # Each phase on a stack of its own; the steering and quota phases after the others, whose
    # stacks are stopped by then: nothing else competes.
    steering = (lambda: steer_phase(args, say), steer.table)
    quotas = (lambda: quota_phase(args, quota_leads, say), quota_report.table)
    if args.steer or args.quota:
        alone = _run_phase(*(steering if args.steer else quotas))
        if alone is None:
            return 1
        print(report.json_line({"date": report.now(), "machine": report.machine(), **alone}))
        return 0

    say("slot selection (in process)")
    slots = slot_bench.measure()
    options = runner.Options(
        leads=leads,
        accept_requests=accept,
        rounds=rounds,
        profile_dir=args.profile,
        keep_dir=args.keep,
        progress=say,
    )
    try:
        e2es, accept_figures, tops = runner.run(options)
    except runner.BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    result = report.summary(e2es, accept_figures, tops, slots)
    print(report.table(result))
    if args.profile is not None:
        print(f"\nwhere the handlers' wall time goes (py-spy --idle, 100 Hz; {args.profile})")
        for path in sorted(args.profile.glob("*.txt")):
            found = profiler.breakdown(path)
            if not found.samples:
                continue
            share = {k: f"{100 * v / found.samples:.0f}%" for k, v in found.by_kind.most_common()}
            print(f"  {path.stem}: {found.samples} samples in handlers; {share}")
            for frame, count in found.by_frame.most_common(8):
                print(f"    {100 * count / found.samples:5.1f}%  {frame}")
    for skipped, phase in ((args.no_steer, steering), (args.no_quota, quotas)):
        if skipped:
            continue
        figures = _run_phase(*phase)
        if figures is None:
            return 1
        result.update(figures)
    print(report.json_line(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

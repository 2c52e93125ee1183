"""`python -m bench` (`make bench`): see `docs/benchmarks.md`."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import cost, profiler, quota, quota_report, report, rest, runner, slot_bench, steer


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
        "--cost",
        action="store_true",
        help="only the cost per 1,000 leads: --leads leads unpaced, and a paced run of "
        "--cost-hosts hosts x --cost-leads-per-host leads on Google's published limits",
    )
    parser.add_argument(
        "--no-cost", action="store_true", help="skip the paced cost run after the other phases"
    )
    parser.add_argument(
        "--cost-hosts", type=int, default=None, metavar="N", help="hosts of the paced run (20)"
    )
    parser.add_argument(
        "--cost-leads-per-host",
        type=int,
        default=None,
        metavar="N",
        help="leads of each host in the paced run (50; 4 hosts x 10 with --quick)",
    )
    parser.add_argument(
        "--rest",
        action="store_true",
        help="only the rest phase: the sweeper's Firestore reads in an idle hour (compressed) and "
        "with 10,000 receipts waiting for tomorrow's window (1,000 with --quick)",
    )
    parser.add_argument(
        "--no-rest", action="store_true", help="skip the rest phase after the other phases"
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


def rest_phase(args: argparse.Namespace, say: Any) -> dict[str, Any]:
    """The rest phase's figures, on a Firestore emulator of its own."""
    root = Path(tempfile.mkdtemp(prefix="leadrun-rest-")) if args.keep is None else args.keep
    backlog = rest.QUICK_BACKLOG if args.quick else rest.BACKLOG
    figures = rest.run(root / "rest", backlog, say)
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return figures


def paced_phase(args: argparse.Namespace, say: Any, unpaced: cost.CostRun | None) -> dict[str, Any]:
    """On one stack paced to Google's published limits: the paced cost run (the cost figures
    beside `unpaced`'s), then the steering phase; each unless skipped."""
    root = Path(tempfile.mkdtemp(prefix="leadrun-steer-")) if args.keep is None else args.keep
    root.mkdir(parents=True, exist_ok=True)
    default_hosts, default_each = (
        cost.QUICK_PACED if args.quick else (cost.PACED_HOSTS, cost.PACED_LEADS_PER_HOST)
    )
    hosts = args.cost_hosts or default_hosts
    each = args.cost_leads_per_host or default_each
    leads = 200 if args.quick else steer.STEER_LEADS
    watched = (20, 100) if args.quick else (100, 1000)
    figures: dict[str, Any] = {}
    with steer.paced_stack(root / "steer") as (stack, count_dir):
        if not args.no_cost:
            paced = cost.paced_run(stack, count_dir, hosts, each, say)
            figures.update(cost.summary([run for run in (unpaced, paced) if run is not None]))
        if not args.no_steer:
            figures.update(steer.run(stack, count_dir, leads, say, watched))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return figures


def paced_table(figures: dict[str, Any]) -> str:
    """The cost table and the steering phase's, those that ran."""
    return "\n\n".join(part for part in (cost.table(figures), steer.table(figures)) if part)


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
    quotas = (lambda: quota_phase(args, quota_leads, say), quota_report.table)
    rests = (lambda: rest_phase(args, say), rest.table)
    if args.rest:
        alone = _run_phase(*rests)
        if alone is None:
            return 1
        print(report.json_line({"date": report.now(), "machine": report.machine(), **alone}))
        return 0
    if args.steer or args.quota or args.cost:
        if args.steer:
            args.no_cost = True
        elif args.cost:
            args.no_steer = True

        def costs() -> dict[str, Any]:
            unpaced = None
            if args.cost:
                root = Path(tempfile.mkdtemp(prefix="leadrun-cost-"))
                unpaced = cost.unpaced_run(args.keep or root, leads, say)
                shutil.rmtree(root, ignore_errors=True)
            return paced_phase(args, say, unpaced)

        alone = _run_phase(*(quotas if args.quota else (costs, paced_table)))
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
    unpaced = cost.from_end_to_end(
        e2es[report.median_round(e2es, tops)], hosts=-(-leads // options.request_size)
    )
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
    paced = (lambda: paced_phase(args, say, unpaced), paced_table)
    if args.no_cost:  # the unpaced figures all the same
        result.update(cost.summary([unpaced]))
        print(cost.table(result))
    for skipped, phase in (
        (args.no_steer and args.no_cost, paced),
        (args.no_rest, rests),
        (args.no_quota, quotas),
    ):
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

"""The ``driftloop`` command: inspect the registry, approve or reject a challenger, make demo data.

It never imports prefect: everything here works with MLflow and files alone. Running
flows is the job of ``flows/`` (``make demo``, or the deployments in ``prefect.yaml``).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from driftloop.config import load_config
from driftloop.errors import DriftloopError


def _registry(args):
    from driftloop.registry import Registry  # importing mlflow takes a second: only when needed

    return Registry(load_config(args.config).registry)


def cmd_status(args) -> int:
    from driftloop.registry import TAG

    registry = _registry(args)
    versions = registry.versions()
    if not versions:
        print(f"no versions of {registry.name} yet: run the bootstrap flow (make demo does)")
        return 0
    print(f"{'version':>7}  {'aliases':<20} {'trigger':<24} {'data window':<24} {'holdout auc':>11}  {'gate':<8} review")
    for v in versions:
        tag = lambda key, default="": v.tags.get(TAG + key, default)  # noqa: E731
        # The latest decision on the version is its review status.
        decisions = [(tag(f"{verb}_at"), f"{verb.replace('_', ' ')} by {tag(f'{verb}_by')}")
                     for verb in ("promoted", "rolled_back", "rejected") if tag(f"{verb}_at")]
        review = max(decisions)[1] if decisions else ""
        print(f"{v.version:>7}  {','.join(v.aliases) or '-':<20} {tag('trigger', '-'):<24} {tag('data_window', '-'):<24} "
              f"{tag('holdout_roc_auc'):>11}  {tag('gate_verdict', '-'):<8} {review}")
    return 0


def cmd_promote(args) -> int:
    if args.override and not args.reason:
        raise DriftloopError("--override needs a written --reason; it is recorded on the version")
    previous, current = _registry(args).promote(
        args.version, args.reviewer, args.comment, override_reason=args.reason if args.override else None
    )
    print(f"champion moved from v{previous or '-'} to v{current} (approved by {args.reviewer})")
    return 0


def cmd_reject(args) -> int:
    _registry(args).reject(args.version, args.reviewer, args.reason)
    print(f"version {args.version} rejected by {args.reviewer}: {args.reason}")
    return 0


def cmd_rollback(args) -> int:
    old, new = _registry(args).rollback(args.reviewer, args.reason)
    print(f"champion rolled back from v{old} to v{new} by {args.reviewer}")
    return 0


def cmd_history(args) -> int:
    entries = _registry(args).history()
    if not entries:
        print("no alias has moved yet")
        return 0
    print(f"{'when (UTC)':<25} {'action':<9} {'alias':<11} {'from':>5} {'to':>5}  {'who':<28} why")
    for e in entries:
        print(f"{e.at:<25} {e.action:<9} {e.alias:<11} {e.from_version or '-':>5} {e.to_version or '-':>5}  {e.who[:28]:<28} {e.why}")
    return 0


def cmd_demo_data(args) -> int:
    from driftloop import demo

    cfg = load_config(args.config)
    generated = demo.generate(cfg.demo, cfg.data)
    print(f"wrote {generated.reference_rows} reference rows to {cfg.data.reference} and "
          f"{len(generated.days)} daily batches to {cfg.data.incoming}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="driftloop", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("driftloop.yaml"), help="config file (default: driftloop.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("status", help="list model versions with their aliases and lineage").set_defaults(run=cmd_status)

    promote = sub.add_parser("promote", help="approve a version: the champion alias moves to it")
    promote.add_argument("version")
    promote.add_argument("--reviewer", default=getpass.getuser(), help="who approves (default: your user name)")
    promote.add_argument("--comment", default="", help="why, for the audit trail")
    promote.add_argument("--override", action="store_true", help="promote a version that failed the gate (needs --reason)")
    promote.add_argument("--reason", default="", help="written reason for --override, recorded on the version")
    promote.set_defaults(run=cmd_promote)

    reject = sub.add_parser("reject", help="reject a challenger: it is tagged and loses the challenger alias")
    reject.add_argument("version")
    reject.add_argument("--reason", required=True, help="why, for the audit trail")
    reject.add_argument("--reviewer", default=getpass.getuser())
    reject.set_defaults(run=cmd_reject)

    rollback = sub.add_parser("rollback", help="champion back to the version it replaced")
    rollback.add_argument("--reason", required=True, help="why, for the audit trail")
    rollback.add_argument("--reviewer", default=getpass.getuser())
    rollback.set_defaults(run=cmd_rollback)

    sub.add_parser("history", help="every alias move: who, when, from which version to which, and why").set_defaults(run=cmd_history)

    sub.add_parser("demo-data", help="write the demo scenario's reference, batches and labels").set_defaults(run=cmd_demo_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its INFO lines are not for this user
    try:
        return args.run(args)
    except DriftloopError as exc:
        print(f"driftloop: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

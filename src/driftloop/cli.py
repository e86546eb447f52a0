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
    print(f"{'version':>7}  {'aliases':<20} {'trigger':<24} {'data window':<24} {'holdout auc':>11}  status")
    for v in versions:
        status = "rejected" if v.tags.get(TAG + "rejected_by") else ("promoted by " + v.tags[TAG + "promoted_by"] if v.tags.get(TAG + "promoted_by") else "")
        auc = v.tags.get(TAG + "holdout_roc_auc", "")
        print(f"{v.version:>7}  {','.join(v.aliases) or '-':<20} {v.tags.get(TAG + 'trigger', '-'):<24} "
              f"{v.tags.get(TAG + 'data_window', '-'):<24} {auc:>11}  {status}")
    return 0


def cmd_promote(args) -> int:
    previous, current = _registry(args).promote(args.version, args.reviewer, args.comment)
    print(f"champion moved from v{previous or '-'} to v{current} (approved by {args.reviewer})")
    return 0


def cmd_reject(args) -> int:
    _registry(args).reject(args.version, args.reviewer, args.reason)
    print(f"version {args.version} rejected by {args.reviewer}: {args.reason}")
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
    promote.set_defaults(run=cmd_promote)

    reject = sub.add_parser("reject", help="reject a challenger: it is tagged and loses the challenger alias")
    reject.add_argument("version")
    reject.add_argument("--reason", required=True, help="why, for the audit trail")
    reject.add_argument("--reviewer", default=getpass.getuser())
    reject.set_defaults(run=cmd_reject)

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

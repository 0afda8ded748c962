"""The ``stampflow`` command: one table of subcommands, each implemented in its own module.

Every module named here exposes ``add_arguments(parser)`` and ``run(args) -> int``. The
daemon's own modules never import ``stampflow.training``; only this dispatcher reaches it,
for the offline subcommands (``synth``, ``train``, ``study``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from stampflow import __version__

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("stampflow.stream.inspect_cmd", "summarise alert packets (and draw their stamps)"),
    "run": ("stampflow.stream.run_cmd", "run the classification daemon (Kafka or archive)"),
    "replay": ("stampflow.stream.replay_cmd", "publish an archive of packets into a Kafka topic"),
    "consume": (
        "stampflow.stream.consume_cmd",
        "read annotated alerts (output topic or files), filter them, print or save them",
    ),
    "demo": ("stampflow.stream.demo_cmd", "synthesise a night, classify it, print a summary"),
    "synth": ("stampflow.training.synth", "write an archive of synthetic ZTF-style packets"),
    "train": (
        "stampflow.training.model_cmd",
        "train a model from its simulator (fixed seeds) into a bundle",
    ),
    "study": ("stampflow.training.model_cmd", "write a model's study report with its figures"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stampflow", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"stampflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        # Import lazily per command would hide --help text; modules are light to import.
        importlib.import_module(module_name).add_arguments(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return int(importlib.import_module(args._module).run(args) or 0)

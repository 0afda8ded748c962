"""Regenerate ``schemas/rubin/<id>.avsc`` from the installed ``lsst-alert-packet``.

    python -m stampflow.schemas.vendor_rubin          # rewrite the vendored schemas
    python -m stampflow.schemas.vendor_rubin --check  # exit 1 when they differ

Serving reads the vendored files (``registry.LocalSchemas.rubin()``), so the daemon needs
neither lsst-alert-packet nor its dependencies (lsst.resources, sqlalchemy, ...); the package
is a dev dependency, for this script and the sample alerts of the tests. Each file is one
Rubin alert schema version (7.0 and later) resolved into one self-contained schema, named by
Rubin's registry id (major*100+minor: ``701.avsc`` is 7.1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stampflow.schemas.registry import lsst_rubin_schemas

VENDORED = Path(__file__).resolve().parent / "rubin"


def differences(folder: Path = VENDORED) -> list[str]:
    """What differs between ``folder`` and lsst-alert-packet's schemas (empty: the same)."""
    expected = lsst_rubin_schemas()
    found = {p.stem: p for p in folder.glob("*.avsc")}
    problems = []
    for schema_id, text in expected.items():
        file = found.pop(str(schema_id), None)
        if file is None:
            problems.append(f"{schema_id}.avsc missing")
        elif json.loads(file.read_text(encoding="utf-8")) != json.loads(text):
            problems.append(f"{schema_id}.avsc differs from lsst-alert-packet's")
    problems.extend(f"{name}.avsc is not in lsst-alert-packet" for name in sorted(found))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    for stale in VENDORED.glob("*.avsc"):
        stale.unlink()
    written = lsst_rubin_schemas().write_directory(VENDORED)
    print(f"wrote {len(written)} Rubin schemas to {VENDORED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The human-readable summary ``stampflow run`` prints when it ends."""

from __future__ import annotations

from stampflow.stream.daemon import WorkerResult


def format_summary(result: WorkerResult) -> str:
    totals = result.totals
    rate = totals.consumed / totals.seconds if totals.seconds > 0 else 0.0
    lines = [
        "stampflow run summary",
        f"  packets in        {totals.consumed:>8}",
        f"  alerts out        {totals.published:>8}   -> {result.output}",
        f"  dead letters      {sum(totals.dead_letters.values()):>8}   -> {result.dead_letters}",
    ]
    for (stage, reason), count in sorted(totals.dead_letters.items()):
        lines.append(f"    {stage:<9} {reason:<22} {count:>6}")
    names = ", ".join(result.classifiers) or "none (pass-through)"
    lines.append(f"  classifiers       {names}")
    for (classifier, label), count in sorted(totals.labels.items()):
        lines.append(f"    {classifier:<12} {label:<19} {count:>6}")
    lines.append(
        f"  throughput        {rate:>8.1f} packets/s  ({totals.batches} batches in "
        f"{totals.seconds:.1f} s)"
    )
    if totals.rewinds:
        lines.append(f"  redelivered       {totals.rewinds:>8} batches (unacknowledged outputs)")
    return "\n".join(lines)

"""Throughput of the blend plugin on one core: alerts/s for batches of 256 and 1024.

    .venv/bin/python bench/bench_blend.py [--model-dir DIR] [--repeats 3]

Alerts are simulated ZTF packets (``training.blend.sim.ztf_cutouts``) decoded by the codec
before timing; the timed ``classify`` call includes the template stamp's decoding (gzip
FITS), preprocessing, the PCA embedding and the MuyGPs neighbour search, mean and variance.
A second timing on the same alerts shows the cost with stamps already decoded and cached.
"""

from __future__ import annotations

import os

# One core: pin every BLAS/OpenMP pool before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from stampflow.classifiers.blend.plugin import BlendClassifier  # noqa: E402
from stampflow.schemas.codec import decode_alert  # noqa: E402
from stampflow.schemas.packets import minimal_candidate, write_alert_packet  # noqa: E402
from stampflow.schemas.stamps import encode_stamp  # noqa: E402
from stampflow.training.blend.sim import ztf_cutouts  # noqa: E402


def packets(n: int, seed: int) -> list[bytes]:
    science, template, difference, _ = ztf_cutouts(np.random.default_rng(seed), n)
    out = []
    for i in range(n):
        stamps = {"Science": science[i], "Template": template[i], "Difference": difference[i]}
        out.append(
            write_alert_packet(
                {
                    "objectId": f"ZTF26bench{i:05d}",
                    "candid": 10_000 + i,
                    "candidate": minimal_candidate(candid=10_000 + i),
                    **{
                        f"cutout{k}": {"fileName": f"{k}.fits.gz", "stampData": encode_stamp(v)}
                        for k, v in stamps.items()
                    },
                }
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    plugin = BlendClassifier.load(args.model_dir)
    print(
        f"blend model {plugin.version} ({plugin.sha256[:12]}), "
        f"{len(plugin.model.gp.features)} training points, k={plugin.model.gp.hyper.nn_count}, "
        f"{plugin.model.gp.features.shape[1]} dims, chunk {plugin.model.gp.chunk}"
    )
    raw = packets(1024, seed=77)
    plugin.classify([decode_alert(p) for p in raw[:32]])  # warm-up
    for batch in (256, 1024):
        cold, warm = [], []
        for _ in range(args.repeats):
            alerts = [decode_alert(p) for p in raw[:batch]]
            start = time.perf_counter()
            plugin.classify(alerts)
            cold.append(batch / (time.perf_counter() - start))
            start = time.perf_counter()
            plugin.classify(alerts)
            warm.append(batch / (time.perf_counter() - start))
        print(
            f"batch {batch:5d}: {np.median(cold):7.0f} alerts/s incl. stamp decode, "
            f"{np.median(warm):7.0f} alerts/s with stamps cached (median of {args.repeats})"
        )


if __name__ == "__main__":
    main()

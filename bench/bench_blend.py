"""Throughput of the blend plugin on one core: ms/alert, old vs new paths, and alerts/s.

    .venv/bin/python bench/bench_blend.py [--model-dir DIR] [--repeats 3]

Per stage, at batch sizes 1, 64 and 500, ms per alert (best of ``--repeats``):
``prepare`` old (the per-stamp reference kept in tests/classifiers/blend/test_fast_paths.py)
vs new (vectorised), and ``predict`` (normalise, PCA, GP mean and variance, flag) old
(MuyGPyS' own tensors and ``NN_Wrapper``) vs new (exact neighbours, Gram distances, one
solve), plus the approximate faiss HNSW neighbours when faiss-cpu is installed. Then the
plugin's ``classify`` in alerts/s, and one JSON line with every figure.

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
import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from stampflow.classifiers.blend.gp import BlendGP  # noqa: E402
from stampflow.classifiers.blend.model import BlendModel  # noqa: E402
from stampflow.classifiers.blend.plugin import BlendClassifier  # noqa: E402
from stampflow.classifiers.blend.preprocess import prepare  # noqa: E402
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


REFERENCE = Path(__file__).resolve().parents[1] / "tests/classifiers/blend/test_fast_paths.py"
BATCHES = (1, 64, 500)


def reference_prepare() -> Callable:
    """The per-stamp preprocessing as it was, from the test file that keeps it."""
    spec = importlib.util.spec_from_file_location("blend_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["blend_reference"] = module
    spec.loader.exec_module(module)
    return module.reference_prepare


def best_ms_per_alert(fn: Callable[[], object], n: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times) / n


def with_gp(model: BlendModel, gp: BlendGP, predict: Callable | None = None) -> BlendModel:
    """The same model with another GP (or another GP predict function)."""
    if predict is not None:
        gp = BlendGP.__new__(BlendGP)
        gp.__dict__.update(model.gp.__dict__)
        gp.predict = predict  # type: ignore[method-assign]
    return BlendModel(model.prep, model.embedding, gp, model.calibration, model.rule)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    plugin = BlendClassifier.load(args.model_dir)
    model = plugin.model
    print(
        f"blend model {plugin.version} ({plugin.sha256[:12]}), "
        f"{len(model.gp.features)} training points, k={model.gp.hyper.nn_count}, "
        f"{model.gp.features.shape[1]} dims"
    )
    raw = packets(1024, seed=77)
    alerts = [decode_alert(p) for p in raw]
    stamps = [a.stamp("template") for a in alerts]
    old_prepare = reference_prepare()
    models = {
        "old": with_gp(model, model.gp, model.gp.predict_muygpys),
        "new": model,
    }
    try:
        import faiss

        faiss.omp_set_num_threads(1)
        gp = model.gp
        models["new_hnsw"] = with_gp(
            model, BlendGP(gp.features, gp.targets, gp.hyper, neighbours="hnsw")
        )
    except ImportError:
        print("faiss-cpu not installed: no approximate-neighbour figures")
    figures: dict[str, dict[str, float]] = {}
    prepared = prepare(stamps[: max(BATCHES)], model.prep)
    for m in models.values():
        m.predict(prepared.subset(slice(0, 32)))  # warm-up
    print(f"{'ms/alert':18s}" + "".join(f"{f'batch {b}':>12s}" for b in BATCHES))
    rows: list[tuple[str, Callable[[int], object]]] = [
        ("prepare_old", lambda b: old_prepare(stamps[:b], model.prep)),
        ("prepare_new", lambda b: prepare(stamps[:b], model.prep)),
    ]
    for name, m in models.items():
        rows.append((f"predict_{name}", lambda b, m=m: m.predict(prepared.subset(slice(0, b)))))
    for name, fn in rows:
        figures[name] = {
            str(b): best_ms_per_alert(lambda fn=fn, b=b: fn(b), b, args.repeats) for b in BATCHES
        }
        print(f"{name:18s}" + "".join(f"{figures[name][str(b)]:12.3f}" for b in BATCHES))
    for b in BATCHES:
        old = figures["prepare_old"][str(b)] + figures["predict_old"][str(b)]
        new = figures["prepare_new"][str(b)] + figures["predict_new"][str(b)]
        print(f"batch {b:4d}: prepare+predict {old:.3f} -> {new:.3f} ms/alert ({old / new:.1f}x)")
    plugin.classify(alerts[:32])  # warm-up
    for batch in (256, 1024):
        cold, warm = [], []
        for _ in range(args.repeats):
            fresh = [decode_alert(p) for p in raw[:batch]]
            start = time.perf_counter()
            plugin.classify(fresh)
            cold.append(batch / (time.perf_counter() - start))
            start = time.perf_counter()
            plugin.classify(fresh)
            warm.append(batch / (time.perf_counter() - start))
        figures[f"classify_{batch}"] = {"cold": float(np.max(cold)), "warm": float(np.max(warm))}
        print(
            f"classify batch {batch:5d}: {np.max(cold):7.0f} alerts/s incl. stamp decode, "
            f"{np.max(warm):7.0f} alerts/s with stamps cached (best of {args.repeats})"
        )
    print(json.dumps({"bench": "blend", "ms_per_alert": figures}, sort_keys=True))


if __name__ == "__main__":
    main()

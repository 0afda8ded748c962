"""Morphology CNN inference throughput on the CPU: images/s at batch 64, 1 and 2 threads.

Two figures per ONNX Runtime thread count: the network with its preprocessing on stamps on the
grid, and the whole plugin path from decoded alerts (gzip FITS decode of four stamps per
alert, resampling, CNN, calibration, annotations). Then the plugin path as the daemon runs it
on two cores (``workers: auto``): two processes of one thread each, started together, their
alerts/s summed.

    .venv/bin/python bench/bench_morphology.py [--repeats 20] [--device cuda] [--model DIR]

``--model`` benchmarks another bundle than the shipped one (e.g. one calibrated with another
number of views, which sets the network passes per stamp). ``--device`` (cpu by default;
cuda needs onnxruntime-gpu and a GPU) is where the first two figures run; the two-process
figure is the CPU's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import numpy as np

from stampflow.classifiers.morphology.plugin import MorphologyClassifier
from stampflow.schemas.codec import decode_alert
from stampflow.schemas.packets import minimal_candidate, write_alert_packet
from stampflow.training.morphology.sim import multiband_record, simulate

BATCH = 64


def _records(images: np.ndarray) -> list[dict]:
    return [
        {
            "objectId": f"JWST{i:05d}",
            "candid": i,
            "candidate": minimal_candidate(candid=i),
            "cutoutMultiband": multiband_record(stamps),
        }
        for i, stamps in enumerate(images)
    ]


def _rate(work, repeats: int) -> float:
    work()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        work()
    return BATCH * repeats / (time.perf_counter() - started)


def _worker_rate(barrier, seconds: float, model: str | None) -> float:
    """One worker process: the plugin path from packets for ``seconds``, in alerts/s."""
    classifier = MorphologyClassifier.load(model, threads=1)
    packets = [write_alert_packet(r) for r in _records(simulate(BATCH, seed=7).images)]
    classifier.classify([decode_alert(p) for p in packets])  # warm-up
    barrier.wait()
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        classifier.classify([decode_alert(p) for p in packets])
        done += BATCH
    return done / (time.perf_counter() - started)


def processes_rate(workers: int, seconds: float = 10.0, model: str | None = None) -> list[float]:
    """alerts/s of each of ``workers`` processes running the plugin path at once."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(workers)
        pool = context.Pool(workers)
        try:
            return pool.starmap(_worker_rate, [(barrier, seconds, model)] * workers)
        finally:
            pool.close()  # not terminate(): the workers exit and release their locks
            pool.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--model", help="bundle directory (default: the shipped one)")
    args = parser.parse_args()
    images = simulate(BATCH, seed=7).images
    packets = [write_alert_packet(r) for r in _records(images)]
    for threads in (1, 2):
        classifier = MorphologyClassifier.load(args.model, threads=threads, device=args.device)
        if threads == 1:
            print(
                f"morphology {classifier.version} (ONNX Runtime on {classifier.device}), "
                f"{classifier.serving.views} view(s) per stamp, batch {BATCH}"
            )
        net = _rate(lambda c=classifier: c.probabilities(images), args.repeats)

        def plugin(c: MorphologyClassifier = classifier) -> None:
            # Fresh alerts each time: stamps are decoded lazily and cached per alert.
            c.classify([decode_alert(p) for p in packets])

        whole = _rate(plugin, max(args.repeats // 4, 1))
        print(
            f"threads={threads}: CNN+preprocess {net:8.0f} images/s; "
            f"plugin from packets (decode+resample+CNN) {whole:8.0f} alerts/s"
        )
    rates = processes_rate(2, model=args.model)
    print(
        f"2 processes x 1 thread (two cores): plugin from packets {sum(rates):8.0f} alerts/s "
        f"({' + '.join(f'{r:.0f}' for r in rates)})"
    )


if __name__ == "__main__":
    main()

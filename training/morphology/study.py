"""``stampflow study morphology``: does the CNN recognise gas it was not simulated with?

Every score goes through the plugin's own prediction path (``MorphologyClassifier``), the
one the daemon runs. The study evaluates the bundle on:

- its own held-out set (the training families, a seed training never uses);
- out-of-family test sets, each from a family held out of training (``TEST_MIXES``): the
  diffraction-limited JWST PSF, crowded fields with every detector defect, the ballistic
  particle generator, and all three at once;
- sanity sets with a known answer (``no_gas`` or ambiguous): bare PSFs, star pairs, star
  fields, pure noise.

The family matrix trains small models on growing sets of families (and the ablations: no
physics augmentation, no class weighting) with one budget and scores each on every set.
Seeds: the study draws its sets from ``StudyConfig.seed`` (1000) upwards; training uses 5-7.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.manifold import TSNE
from sklearn.metrics import confusion_matrix, silhouette_samples, silhouette_score

from stampflow.classifiers.morphology import ENTRY
from stampflow.classifiers.morphology.plugin import MorphologyClassifier
from stampflow.classifiers.morphology.preprocess import preprocess
from stampflow.classifiers.morphology.views import averaged
from stampflow.classifiers.typed import to_dict
from stampflow.training.calibration import plot_reliability
from stampflow.training.morphology import figures
from stampflow.training.morphology.augment import AugmentConfig
from stampflow.training.morphology.evaluate import (
    NO_GAS,
    SCORE_HEADER,
    Evaluation,
    evaluate,
    risk_coverage,
    uncalibrated,
)
from stampflow.training.morphology.export import load_net
from stampflow.training.morphology.families import (
    BALANCED,
    CALIBRATION_MIX,
    DEV_MIXES,
    DEV_MORPHS,
    DEV_SCENES,
    MORPH_FAMILIES,
    SANITY_KINDS,
    SIMULATOR_VERSION,
    TEST_MIXES,
    TRAIN_MIX,
    FamilyMix,
    faint_dust_set,
    sanity_set,
    simulate_mix,
)
from stampflow.training.morphology.optics import psf_bank
from stampflow.training.morphology.sim import CLASSES, SimulatedSet
from stampflow.training.morphology.train import TrainConfig, fit
from stampflow.training.report import Report

SHOWN_PARAMS = (
    "psf_family",
    "scene_family",
    "morph_family",
    "snr",
    "star_peak_snr",
    "inclination_deg",
    "distance_kpc",
    "star_config",
    "n_field_stars",
)


@dataclass(frozen=True)
class Recipe:
    """One row of the family matrix: what a small model trains on."""

    name: str
    mix: FamilyMix
    physics: bool = True
    class_weighting: bool = True


LEGACY = FamilyMix(psf=("gaussian",), scene=("clean",), morph=("analytic",))
RECIPES = (
    Recipe("gaussian x clean x analytic (the 1.0 recipe)", LEGACY),
    Recipe("+ jwst_wfe PSF", replace(LEGACY, psf=TRAIN_MIX.psf)),
    Recipe("+ crowded, detector scenes", replace(TRAIN_MIX, morph=("analytic",))),
    Recipe("+ volume generator (the shipped recipe)", TRAIN_MIX),
    Recipe("shipped mix, no physics augmentation", TRAIN_MIX, physics=False),
    Recipe("shipped mix, no class weights", TRAIN_MIX, class_weighting=False),
)


@dataclass(frozen=True)
class StudyConfig:
    """What ``stampflow study morphology`` evaluates and the matrix's training budget."""

    seed: int = 1000
    model_dir: str | None = None  # the bundle studied; None: the shipped one
    n_test: int = 1500  # own held-out set
    n_out: int = 800  # each out-of-family set
    n_sanity: int = 200  # each sanity set
    n_tsne: int = 1200
    matrix: bool = True  # train the family-matrix and ablation models
    budget: TrainConfig = field(
        # One view: the matrix compares recipes; the shipped views are measured in the headline.
        default_factory=lambda: TrainConfig(
            n_train=2500, n_val=400, n_calibration=400, n_ood_fit=1500, epochs=5, views=1
        )
    )

    def __post_init__(self) -> None:
        if min(self.n_test, self.n_out, self.n_sanity, self.n_tsne) < 10:
            raise ValueError("n_test, n_out, n_sanity and n_tsne must each be >= 10")


def _sets(config: StudyConfig) -> dict[str, SimulatedSet]:
    sets = {"own held-out": simulate_mix(config.n_test, config.seed, TRAIN_MIX, progress=True)}
    for k, (name, mix) in enumerate(TEST_MIXES.items()):
        sets[name] = simulate_mix(config.n_out, config.seed + 1 + k, mix, progress=True, desc=name)
    return sets


def _sanity(config: StudyConfig) -> dict[str, SimulatedSet]:
    return {
        kind: sanity_set(kind, config.n_sanity, config.seed + 10 + k, progress=True)
        for k, kind in enumerate(SANITY_KINDS)
    }


def _matrix(
    config: StudyConfig, sets: dict[str, SimulatedSet], sanity: dict[str, SimulatedSet]
) -> tuple[list[str], np.ndarray, np.ndarray, list[list[Any]]]:
    """Accuracy and macro-F1 of each recipe on each set, and the rows of its table."""
    budget = config.budget
    cache: dict[FamilyMix, tuple[SimulatedSet, SimulatedSet]] = {}
    calibration = simulate_mix(budget.n_calibration, config.seed + 22, CALIBRATION_MIX)
    accuracy = np.zeros((len(RECIPES), len(sets) + 1))
    macro_f1 = np.zeros_like(accuracy)
    rows = []
    all_sanity = _concat(list(sanity.values()))
    for r, recipe in enumerate(RECIPES):
        if recipe.mix not in cache:
            cache[recipe.mix] = (
                simulate_mix(budget.n_train, config.seed + 20, recipe.mix, progress=True),
                simulate_mix(budget.n_val, config.seed + 21, recipe.mix),
            )
        train_set, val_set = cache[recipe.mix]
        trained = fit(
            train_set,
            val_set,
            replace(
                budget,
                mix=recipe.mix,
                augment=AugmentConfig(physics=recipe.physics),
                class_weighting=recipe.class_weighting,
                seed=config.seed + 20,
            ),
            calibration,
            progress=True,
        )
        plugin = trained.classifier()
        for c, data in enumerate(sets.values()):
            scores = evaluate(plugin, data).scores
            accuracy[r, c], macro_f1[r, c] = scores.accuracy, scores.macro_f1
        sanity_scores = evaluate(plugin, all_sanity).scores
        accuracy[r, -1] = sanity_scores.no_gas_or_flagged
        macro_f1[r, -1] = np.nan
        rows.append(
            [
                recipe.name,
                *(f"{accuracy[r, c]:.3f} / {macro_f1[r, c]:.3f}" for c in range(len(sets))),
                f"{accuracy[r, -1]:.3f}",
                round(trained.seconds / 60, 1),
            ]
        )
    return [recipe.name for recipe in RECIPES], accuracy, macro_f1, rows


MATRIX_FILE = "matrix.json"


def _matrix_key(config: StudyConfig) -> dict[str, Any]:
    """What the matrix depends on (not the studied bundle): its cache key."""
    # The recipes set augmentation and class weighting themselves; their names are labels.
    budget = replace(config.budget, augment=AugmentConfig(), class_weighting=True)
    return {
        "simulator": SIMULATOR_VERSION,
        "seed": config.seed,
        "sizes": [config.n_test, config.n_out, config.n_sanity],
        "budget": to_dict(budget),
        "recipes": [[to_dict(r.mix), r.physics, r.class_weighting] for r in RECIPES],
    }


def matrix(
    config: StudyConfig,
    out: Path,
    sets: dict[str, SimulatedSet] | None = None,
    sanity: dict[str, SimulatedSet] | None = None,
) -> tuple[list[str], np.ndarray, list[list[Any]]]:
    """The family matrix, cached in ``out/matrix.json``: it trains six models and does not
    depend on the bundle studied, so a re-run of the study with the same seeds, sizes,
    budget and recipes reuses it (delete the file to recompute)."""
    path = Path(out) / MATRIX_FILE
    key = _matrix_key(config)
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            rows = [
                [recipe.name, *row[1:]] for recipe, row in zip(RECIPES, cached["rows"], strict=True)
            ]
            return [recipe.name for recipe in RECIPES], np.array(cached["accuracy"]), rows
    sets = sets if sets is not None else _sets(config)
    sanity = sanity if sanity is not None else _sanity(config)
    names, accuracy, _, rows = _matrix(config, sets, sanity)
    Path(out).mkdir(parents=True, exist_ok=True)
    record = {"key": key, "names": names, "accuracy": accuracy.tolist(), "rows": rows}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return names, accuracy, rows


def _concat(parts: list[SimulatedSet]) -> SimulatedSet:
    return SimulatedSet(
        images=np.concatenate([p.images for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        rows=[row for p in parts for row in p.rows],
    )


def _mistake_rows(name: str, data: SimulatedSet, ev: Evaluation, limit: int) -> list[list[Any]]:
    predicted = ev.predicted
    wrong = np.nonzero(predicted != data.labels)[0][:limit]
    return [
        [
            name,
            int(i),
            CLASSES[data.labels[i]],
            CLASSES[predicted[i]],
            float(ev.prediction.probabilities[i].max()),
            "yes" if ev.flagged[i] else "no",
            *(_fmt(data.rows[i].get(key, "-")) for key in SHOWN_PARAMS),
        ]
        for i in wrong
    ]


def _saturated(row: dict[str, Any]) -> bool:
    """The target's core saturated (NaN, bled or bloomed)."""
    return row["star_peak_snr"] > 1e4


BREAKDOWN = (
    ("target star peak S/N > 1e4 (saturated core)", _saturated),
    ("target star peak S/N <= 1e4", lambda r: r["star_peak_snr"] <= 1e4),
    ("dust S/N < 15", lambda r: r["cls"] != "no_gas" and r["snr"] < 15),
    ("dust S/N >= 15", lambda r: r["cls"] != "no_gas" and r["snr"] >= 15),
    ("resolved binary", lambda r: r.get("binary_resolved", 0.0) > 0),
    ("field stars on the canvas >= 5", lambda r: r.get("n_field_stars", 0) >= 5),
)


def _breakdown(
    sets: dict[str, SimulatedSet], evaluations: dict[str, Evaluation]
) -> list[list[Any]]:
    """Accuracy (share, count) of each set's images by a physical condition."""
    rows = []
    for label, condition in BREAKDOWN:
        cells = []
        for name, data in sets.items():
            chosen = np.array([bool(condition(r)) for r in data.rows])
            ok = evaluations[name].predicted[chosen] == data.labels[chosen]
            cells.append(f"{ok.mean():.2f} ({chosen.sum()})" if chosen.any() else "-")
        rows.append([label, *cells])
    return rows


def _saturated_accuracy(data: SimulatedSet, ev: Evaluation) -> float:
    """Accuracy on the images whose target saturated."""
    chosen = np.array([_saturated(row) for row in data.rows])
    return float(np.mean(ev.predicted[chosen] == data.labels[chosen]))


def _fmt(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


def _bar(ok: bool) -> str:
    return "met" if ok else "**not met**"


def study(config: StudyConfig, out: Path) -> Path:
    """Evaluate the bundle ``config.model_dir``; write the report and its figures to ``out``."""
    started = time.perf_counter()
    model_dir = Path(config.model_dir) if config.model_dir else ENTRY.bundle
    classifier = MorphologyClassifier.load(model_dir)
    raw = uncalibrated(classifier)
    manifest = json.loads((Path(model_dir) / "manifest.json").read_text())
    report = Report(out, "Morphology CNN: recognising gas it was not simulated with")
    sets = _sets(config)
    sanity = _sanity(config)
    evaluations = {name: evaluate(classifier, data, raw) for name, data in sets.items()}
    sanity_evals = {name: evaluate(classifier, data, raw) for name, data in sanity.items()}
    stress = faint_dust_set(config.n_sanity, config.seed + 20, progress=True)
    stress_eval = evaluate(classifier, stress, raw)
    dev = {
        name: simulate_mix(config.n_out, config.seed + 50 + k, mix, progress=True, desc=name)
        for k, (name, mix) in enumerate(DEV_MIXES.items())
    }
    dev_evals = {name: evaluate(classifier, data, raw) for name, data in dev.items()}
    out_names = [n for n in sets if n != "own held-out"]

    # Figures of the data.
    by_morph = {
        m: simulate_mix(
            30,
            config.seed + 30 + k,
            replace(TRAIN_MIX, psf=("jwst_wfe",), scene=("clean",), morph=(m,), balance=BALANCED),
        )
        for k, m in enumerate(MORPH_FAMILIES)
    }
    figures.gallery(by_morph, report.figure_path("gallery_morphology.png"))
    by_scene = {
        s: simulate_mix(
            30,
            config.seed + 40 + k,
            replace(TRAIN_MIX, psf=("jwst",), scene=(s,), balance=BALANCED),
        )
        for k, s in enumerate(("clean", "crowded", "detector", "crowded_detector", *DEV_SCENES))
    }
    figures.gallery(by_scene, report.figure_path("gallery_scene.png"))
    figures.gallery(
        {k: v for k, v in sanity.items()}, report.figure_path("gallery_sanity.png"), per_row=8
    )
    bank = psf_bank()
    figures.psf_gallery(
        {name: members[0] for name, members in bank.psfs.items()},
        report.figure_path("psf_families.png"),
    )

    # The flag and calibration on every set.
    curves = {}
    for name, ev in evaluations.items():
        correct = ev.predicted == sets[name].labels
        coverage, accuracy = risk_coverage(ev.score, correct)
        curves[name] = (coverage, accuracy, 1 - ev.scores.flagged, ev.scores.accuracy_unflagged)
    figures.risk_coverage(curves, report.figure_path("risk_coverage.png"))
    figures.confusions(
        {
            name: confusion_matrix(sets[name].labels, ev.predicted, labels=range(len(CLASSES)))
            for name, ev in evaluations.items()
        },
        report.figure_path("confusion.png"),
    )
    reliability = {}
    for name in ("own held-out", "all held out"):
        data, ev = sets[name], evaluations[name]
        raw_p = raw.probabilities(data.images)
        reliability[f"{name}, raw"] = (raw_p.max(1), raw_p.argmax(1) == data.labels)
        p = ev.prediction.probabilities
        reliability[f"{name}, calibrated"] = (p.max(1), p.argmax(1) == data.labels)
    plot_reliability(
        reliability,
        report.figure_path("reliability.png"),
        title=f"reliability (temperature T={classifier.temperature:.2f})",
    )

    # Representation: t-SNE and silhouettes, own set and out-of-family sets together.
    per_set = max(config.n_tsne // len(sets), 10)
    feats, labels, groups = [], [], []
    for g, data in enumerate(sets.values()):
        x = preprocess(data.images[:per_set])
        f, _ = averaged(classifier.model.run, x, classifier.serving.views)  # as served
        feats.append(f)
        labels.append(data.labels[:per_set])
        groups.append(np.full(len(f), g))
    features, labels_all, groups_all = (np.concatenate(x) for x in (feats, labels, groups))
    embedding = TSNE(n_components=2, init="pca", random_state=0, perplexity=30).fit_transform(
        features
    )
    figures.tsne(embedding, labels_all, groups_all, list(sets), report.figure_path("tsne.png"))
    own = groups_all == 0
    silhouettes = silhouette_samples(features[own], labels_all[own])
    set_silhouette = {
        name: float(silhouette_score(features[groups_all == g], labels_all[groups_all == g]))
        for g, name in enumerate(sets)
        if len(np.unique(labels_all[groups_all == g])) > 1
    }

    # Mistakes with their physics.
    mistake_items, mistake_rows = [], []
    for name in out_names:
        data, ev = sets[name], evaluations[name]
        for i in np.nonzero(ev.predicted != data.labels)[0][:3]:
            mistake_items.append(
                (
                    data.images[i],
                    f"{name[:12]} {CLASSES[data.labels[i]]}->{CLASSES[ev.predicted[i]]}",
                )
            )
        mistake_rows += _mistake_rows(name, data, ev, 6)
    figures.mistakes(mistake_items, report.figure_path("mistakes.png"))

    matrix_rows: list[list[Any]] = []
    if config.matrix:
        names, accuracy, matrix_rows = matrix(config, out, sets, sanity)
        figures.family_matrix(
            accuracy,
            names,
            [*sets, "sanity: no_gas or flagged"],
            report.figure_path("family_matrix.png"),
            "accuracy by training families (rows) and test families (columns)",
        )

    # The report.
    metrics, training = manifest["metrics"], manifest["training"]
    report.text(
        f"Model `{classifier.name}` {classifier.version} (sha256 `{classifier.sha256[:16]}`), "
        f"made by `stampflow train morphology`, whose last run took "
        f"{metrics.get('train_seconds', float('nan')) / 60:.1f} min on "
        f"{training.get('threads')} CPU thread, simulation included (a full training of "
        "this recipe takes 22-24 min here; `--weights` only calibrates an existing network "
        "again, in about 2 min); "
        f"{sum(p.numel() for p in load_net(model_dir).parameters()):,} parameters. Numbers and "
        f"figures below come from `stampflow study morphology` "
        f"({(time.perf_counter() - started) / 60:.1f} min)."
    )
    report.heading("The question")
    report.text(
        "Version 1.0 scored 0.999 on its own simulator and 0.41 accuracy (macro-F1 0.29) on "
        "NIRCam-like images rendered by independent code: its training images had one "
        "Gaussian PSF, a clean field and one analytic generator, so an Airy-ringed star "
        "looked like a spiral and its flag did not know it was lost (3% flagged, 59% wrong). "
        "Version 2 trains on several *families* of images and is judged on families it "
        "never saw. Each image draws one family per axis:\n\n"
        "| axis | families | trained on | calibration (flag, temperature) | test only |\n"
        "|---|---|---|---|---|\n"
        f"| PSF | gaussian, airy, jwst, jwst_wfe | {', '.join(TRAIN_MIX.psf)} | "
        f"{', '.join(CALIBRATION_MIX.psf)} | jwst |\n"
        f"| scene + detector | clean, crowded, detector, crowded_detector | "
        f"{', '.join(TRAIN_MIX.scene)} | - | crowded_detector |\n"
        f"| morphology generator | {', '.join(m for m in MORPH_FAMILIES if m not in DEV_MORPHS)} "
        f"| {', '.join(TRAIN_MIX.morph)} "
        "| - | particles |\n\n"
        "- **PSF** (`optics.py`): `jwst` is Fourier optics on JWST's pupil (18 hexagonal "
        "segments, secondary obscuration, 3 struts), band-integrated over 5 wavelengths, "
        "pixel-integrated: core, rings, 6+2 spikes, at 6 roll angles. `jwst_wfe` adds a "
        "40-120 nm rms low-order wavefront error with segment pistons, other roll angles and "
        "2-12 mas pointing jitter. `airy` is a round obscured aperture (rings, no spikes).\n"
        "- **scene** (`scene.py`, `detector.py`): every family has exposure-based noise "
        "(300-3000 s: Poisson sky/source/dark, read noise, gain) and binaries resolved or not "
        "by separation and distance; `no_gas` spans singles, close and wide binaries and "
        "triples. 3-15% of targets (by family) are bright enough to saturate the stars' "
        "core (F444W peak S/N 2e4-3e5); since 2.1 they are observed as a programme would, "
        "with the exposure set for the nebula (dust peak S/N 100-3000; 2.0 kept the usual "
        "6-80 beside the saturated star, now the `faint_dust` stress set). "
        "`crowded` adds field stars and galaxies at Galactic-plane densities, "
        "companions, sky gradients, saturated NaN cores; `detector` adds cosmic-ray residuals, "
        "snowballs, hot and NaN pixels; `crowded_detector` (held out) has denser fields, every "
        "defect, plus 1/f striping, drizzle-correlated noise and charge bleeding, which no "
        "training family shows.\n"
        "- **morphology** : `analytic` is the 1.0 generator's 2D formulae; `volume` "
        "ray-marches 3D emissivity (shock-cone pinwheel plumes, nested clumpy ellipsoidal "
        "shells, hourglass lobes with or without a torus and of unequal brightness, 3D "
        "log-normal turbulence); `scattering` (for development only) gives the dust an "
        "optical depth: single-scattered starlight with a Henyey-Greenstein phase function "
        "and thermal emission, both extinguished on the way out, with shadowing (Kepler-timed "
        "plumes, "
        "shells with discrete surface clumps and incomplete arcs, cavities carved in an "
        "envelope with or without an optically thick torus, a hierarchical clump cascade); "
        "`particles` (held out) launches 40,000 ballistic tracer "
        "particles by each class's physics (Keplerian colliding-wind dust, periodic clumpy "
        "bursts, cone-collimated flows with a Hubble law, a fractal cloud)."
    )
    report.image("psf_families.png", "The PSF families (first bank member, F200W and F444W)")
    report.image(
        "gallery_morphology.png", "The four morphology generators, jwst_wfe PSF, clean scene"
    )
    report.image(
        "gallery_scene.png", "The scene families (the last for development only), jwst PSF"
    )

    report.heading("Headline")
    rows, bars = [], []
    for name, ev in evaluations.items():
        s = ev.scores
        rows.append([name, *s.row()])
        if name == "own held-out":
            bars.append([name, "acc, macro-F1 >= 0.97", _bar(min(s.accuracy, s.macro_f1) >= 0.97)])
        else:
            bars.append(
                [
                    name,
                    "acc, macro-F1 >= 0.90; unflagged >= 0.95 with <= 25% flagged; ECE <= 0.03",
                    ", ".join(
                        [
                            f"acc/F1 {_bar(min(s.accuracy, s.macro_f1) >= 0.90)}",
                            f"flag {_bar(s.accuracy_unflagged >= 0.95 and s.flagged <= 0.25)}",
                            f"ECE {_bar(s.ece <= 0.03)}",
                        ]
                    ),
                ]
            )
    report.table(["set", *SCORE_HEADER], rows)
    sanity_rows = [
        [name, ev.scores.n, ev.scores.no_gas_or_flagged, ev.scores.flagged]
        for name, ev in sanity_evals.items()
    ]
    sanity_all = float(np.mean([ev.scores.no_gas_or_flagged for ev in sanity_evals.values()]))
    bars.append(
        ["sanity sets", ">= 99% no_gas or ambiguous", _bar(min(r[2] for r in sanity_rows) >= 0.99)]
    )
    report.text("The issue's bars:")
    report.table(["set", "bar", "status"], bars)
    report.text(
        "Flag columns: `flagged` is the share the plugin marks ambiguous; `acc. unflagged` "
        "the accuracy of the rest; `error AUROC` how well the flag's score ranks wrong "
        "answers above right ones. ECE (15 bins) of the top-class probability with the "
        "temperature at 1 (raw) and with the shipped temperature."
    )

    report.text(
        "Development sets, for choosing recipes aimed at one axis, never reported as tests: "
        "`scene:dev_detector` renders the crowded scenes' detector defects a third way "
        "(saturated cores flat-topped at the full well and blooming along one axis, a step "
        "between readout amplifiers and a row drift, bilinear resampling: `detector.py`), "
        "other code and physics than the held-out `crowded_detector` family and the training "
        "augmentation; `morph:scattering` draws the dust from the scattering generator "
        "(`scattering.py`: starlight scattered and absorbed as well as re-emitted), written "
        "without reading the held-out particle generator, for recipes aimed at the "
        "generator axis."
    )
    report.table(
        ["set", *SCORE_HEADER, "saturated targets"],
        [
            [name, *ev.scores.row(), _saturated_accuracy(dev[name], ev)]
            for name, ev in dev_evals.items()
        ],
    )

    report.heading("Sanity sets: known answers")
    report.text(
        "Bright single stars under each PSF family in turn (bare PSFs), star pairs at "
        '0.01-3", star fields without a target (crowded, crowded_detector), pure sky noise '
        "(clean and detector). All must come out `no_gas` or ambiguous."
    )
    report.table(["set", "images", "no_gas or ambiguous", "flagged"], sanity_rows)
    misses = []  # confident gas calls, by sanity set and PSF family
    for name, ev in sanity_evals.items():
        wrong = np.nonzero((ev.predicted != NO_GAS) & ~ev.flagged)[0]
        by_psf = Counter(sanity[name].rows[i]["psf_family"] for i in wrong)
        misses += [f"{name}: {n} under the {family} PSF" for family, n in by_psf.items()]
    report.text(
        "A stamp with no source seen at one place in two bands (a 3x3 aperture at S/N 5, "
        "each pixel counted at most at 5: `preprocess.detected`) is flagged whatever the "
        "network says: there is no morphology to read, and a cosmic ray, snowball or hot "
        "pixel lands in one band only. So is a `no_gas` call around a star saturated where "
        "dust shines (three or more DO_NOT_USE pixels in the central 6x6 of F356W or "
        "F444W: `preprocess.saturated_core`): faint dust there hides under the PSF's "
        "wings, and absence is not established (the stress set below). This costs a few "
        "points of coverage on every set whose saturated cores are NaN. Confident gas "
        "calls on sanity images: " + ("; ".join(misses) if misses else "none") + "."
    )
    report.image("gallery_sanity.png", "Sanity-set examples")
    st = stress_eval.scores
    stress_right = stress_eval.predicted == stress.labels
    right_or_flagged = float(np.mean(stress_right | stress_eval.flagged))
    confident_no_gas = float(
        np.mean((stress_eval.predicted == NO_GAS) & ~stress_eval.flagged & ~stress_right)
    )
    report.text(
        "**Stress set `faint_dust`**: dusty targets (training families, four classes "
        "balanced) whose stars saturate (F444W peak S/N 2e4-3e5) beside dust at its usual "
        "S/N 6-80, a contrast of 250-50,000 that buries the dust under the PSF's wings "
        "and spikes. Version 2.0 drew every saturated target so and scored 0.33-0.61 on "
        "them; since 2.1 a saturated target is observed as programmes do, with the "
        "exposure set for its nebula (dust S/N 100-3000, the stars' core saturated), and "
        f"this case is a stress set. Of its {st.n} images, {st.accuracy:.0%} are "
        f"classified right and {st.flagged:.0%} flagged; {right_or_flagged:.0%} are right "
        f"or flagged; the unflagged are {st.accuracy_unflagged:.0%} right, and "
        f"{confident_no_gas:.0%} of the set is called `no_gas` unflagged. Such a target "
        "needs PSF subtraction (a reference star or a PSF model of the visit) before a "
        "morphology can be read."
    )

    if config.matrix:
        report.heading("The family matrix: what each family of training buys")
        report.text(
            f"Small models ({config.budget.n_train} training images, {config.budget.epochs} "
            "epochs, one seed, flag and temperature calibrated on the airy family as for the "
            f"shipped model; cached in `{MATRIX_FILE}`, which does not depend on the bundle "
            "studied) trained on growing sets of families, scored on every set. Cells "
            "are accuracy / macro-F1; the last column is the sanity sets' share `no_gas` or "
            "ambiguous. Rows 4-6 are the ablations on the full mix: physics augmentation "
            "on or off, class weights off. The shipped recipe is chosen on the validation "
            "set and the held-out calibration family, never on these test columns. One seed "
            "per cell: differences of a point or two are noise. Physics augmentation costs "
            "accuracy at this budget, and did so on dev sets that are not reported here "
            "(800 images of the training mix, 500 of the airy calibration family; 4000 "
            "training images, 6 epochs): 0.871 / 0.852 with it, 0.904 / 0.866 without, "
            "0.890 / 0.856 with it but without distance dimming. At the shipped budget it "
            "pays: trained without it (same seeds, 12000 images, 10 epochs) the validation "
            "accuracy was 0.948 (0.945 with it) but the held-out airy calibration family fell "
            "from 0.918 to 0.893, so the shipped model keeps it. The rest of this paragraph "
            "was measured on version 2.0's simulator, whose saturated targets all had faint "
            "dust (the `faint_dust` stress set). Neither estimating the noise "
            "from the stamp's corners (a saturated star inflates a whole-stamp MAD 4-10x), "
            "in preprocessing or in the augmentation, helped saturated targets (0.49-0.53 / "
            "0.26-0.37 on the dev sets). "
            "Weighting saturated-target images (star peak S/N > 1e4) x2 or x4 in the loss, or "
            "adding four input channels with the star's azimuthal median profile subtracted (the "
            "bands kept; in whole-stamp or per-annulus noise units), did not help either (4000 "
            "training images, 6 epochs; fresh dev sets of 2000 training-mix and 1500 airy images, "
            "accuracy overall / on saturated targets, mix then airy): baseline 0.895 / 0.483 and "
            "0.887 / 0.460 (another seed: 0.881 / 0.443 and 0.873 / 0.410), x2 0.864 / 0.506 and "
            "0.853 / 0.496, x4 0.840 / 0.506 and 0.821 / 0.439, profile-subtracted channels 0.893 "
            "/ 0.500 and 0.868 / 0.388, per-annulus 0.890 / 0.471 and 0.867 / 0.453: the "
            "saturated-target gains are within the seed spread and weighting costs overall "
            "accuracy. Detector-artefact augmentation (`augment.artefacts`, `--set "
            "augment.p_artefacts=0.3`: bleed trails out of saturated cores, white plus "
            "random-walk stripes across them, 0.3-0.6 px correlated noise, coded apart from "
            "the held-out family's charge spill, 1/f stripes and drizzle kernel) was tried at "
            "the shipped budget (same seeds, 14 min): validation 0.941 (shipped 0.945), airy "
            "calibration family 0.915 (0.918), calibrated NLL 0.202 (0.190), so by the rule "
            "above it is not shipped. Its test columns, reported for the record and not used "
            "to choose: own 0.945, psf:jwst 0.920, crowded_detector 0.825 (21% flagged, error "
            "AUROC 0.933; shipped 0.815, 26%, 0.887), particles 0.824, all held out 0.744, "
            "with calibrated ECE 0.03-0.06 against 0.02-0.05: the defect it imitates is "
            "learnt a little, calibration is lost, and saturated targets stay at 0.29-0.60. "
            "On 2.1's simulator (4000 training images, 6 epochs; dev sets of 800 "
            "training-mix and 800 airy images, accuracy mix / airy): one extra random draw "
            "per saturated target, which redraws every training image after it, moved the "
            "baseline from 0.887 / 0.869 to 0.920 / 0.875, so one dev run cannot resolve a "
            "few points. Log-normal clumping of the analytic and volume dust (amplitude "
            "0-1, against the first baseline: 0.870 / 0.838), detector-artefact "
            "augmentation (against the second: 0.900 / 0.889), a quarter of saturated "
            "targets beside faint dust in training (0.907 / 0.873) and both (0.886 / 0.853) "
            "showed no gain beyond that spread; none is shipped. What paid is data: the "
            "same recipe on 24,000 images for 12 epochs instead of 12,000 for 10 raised "
            "validation accuracy from 0.971 to 0.981 and the airy calibration family from "
            "0.944 to 0.952 (own held-out 0.973 -> 0.979, all held out 0.755 -> 0.816). "
            "Version 2.3.0 turns detector-artefact augmentation on (p = 0.3, seed 15), "
            "chosen by a rule written before it trained: validation and airy calibration "
            "accuracy within a point of 2.2.0, calibrated NLL within 0.02, and two points "
            "over 2.2.0 on 800 `scene:dev_detector` images (seed 2000). It gave 0.988, 0.957, "
            "0.085 and 0.910 against 0.880. The same recipe with seed 5 had missed the "
            "calibration bound by 0.1 point (0.946) and p = 0.15 the development bar by 0.25 "
            "point (0.898); the matrix rows above use the 2.3.0 recipe. Two follow-ups, "
            "each with its rule written first, were not shipped: 36,000 images for 10 "
            "epochs (35.6 min) gave validation 0.986, calibration family 0.949 and NLL 0.111 "
            "(bounds 0.983, 0.952, 0.095; development family 0.909); calibrating 2.3.0 on "
            "the development family as well (`calibration.scene` + dev_detector) raised the "
            "calibrated ECE on a fresh development draw from 0.031 to 0.036. A third "
            "training generator was tried at the shipped budget, its rule written first: "
            "`scattering` beside analytic and volume (24,000 images, seed 15, 22.1 min), to "
            "ship if validation >= 0.977, airy calibration family >= 0.947, NLL <= 0.119 and "
            ">= 0.900 on the 800 `scene:dev_detector` images of the two old generators "
            "(2.3.0: 0.910). It gave 0.965, 0.929, 0.173 and 0.894, so it is not shipped. "
            "On a fresh draw of the three-generator mix (1,500 images, seed 3000, for "
            "development only) it reached 0.942 on the scattering images, where 2.3.0 "
            "reaches 0.806, but lost on the other two (analytic 0.976 against 0.990, volume "
            "0.979 against 0.987): at this budget the third generator takes from the two "
            "it had. The generator became a development family instead "
            "(`morph:scattering`), to choose recipes aimed at the generator axis on; 2.3.0 "
            "reaches 0.790 on 800 of its images (seed 2001). The first such recipe, "
            "`--set dust_jitter.p=0.5` (`jitter.py`: half the training targets' dust light "
            "redrawn before the PSF, radially reweighted, clumped and colour-tilted; 21.9 "
            "min), had to reach 0.820 there besides the four bounds above. It gave "
            "validation 0.983, calibration family 0.943, NLL 0.117, development detector "
            "family 0.9125 and development generator 0.766: not shipped. What tells the "
            "generators apart for the network is their geometry (the confusions are spirals "
            "and irregular clouds called shells, bipolar flows called irregular), not how "
            "their light is laid on it. Nor is it the geometry's smooth changes: "
            "`--set dust_jitter.geometry_p=0.5` (`jitter.py`: half the training targets' "
            "dust resampled before the PSF, a radial remap r -> r0 (r/r0)^a with a in "
            '0.75-1.33, one axis squeezed to 0.65-1, a smooth displacement of up to 0.08" '
            "rms; 24.2 min), under the same five bounds, gave validation 0.983, calibration "
            "family 0.954, NLL 0.105, development detector family 0.895 and development "
            "generator 0.784: not shipped. Arms wound tighter, shells thinned or squeezed "
            "and edges wobbled are still the training generators' arms, shells and edges; "
            "what differs is the structure each generator builds (discrete clumps and arcs, "
            "shadowed cavities), which a warp of the same image cannot make."
        )
        report.image(
            "family_matrix.png", "Accuracy by training recipe (rows) and test set (columns)"
        )
        report.table(["trained on", *sets, "sanity", "min"], matrix_rows)

    report.heading("Uncertainty that knows when it does not know")
    report.text(
        "The plugin flags an alert when the normalised entropy exceeds "
        f"{classifier.ambiguous_threshold:.3f} (near a class boundary) or when the "
        "Mahalanobis distance of its penultimate features to the nearest class mean exceeds "
        f"{classifier.ood.serving.threshold:.2f} (unlike the training images). The class "
        "means and the shared precision matrix are fitted on training features and stored in "
        "`weights.safetensors`; both thresholds and the temperature were chosen on the "
        "validation set plus the held-out airy-PSF family, never on a set reported here: "
        "the pair keeping the most alerts unflagged at "
        f"{training.get('flag_accuracy')} accuracy, with the distance threshold no higher "
        f"than the {training.get('ood_quantile')} quantile of the in-family validation "
        "distances (an OOD detector's usual operating point). Without that cap a model that "
        "has learnt the calibration family well lets the search open the distance threshold "
        "until nothing far is flagged: trained on 12,000 images with the same recipe, this "
        "model's uncapped flag marked 11% of the all-held-out set, whose unflagged were 80% "
        "right (2.0: 30%, 89%)."
        if classifier.ood is not None
        else "This bundle has no OOD statistics: the flag is the entropy's alone."
    )
    report.text(
        f"Every stamp is read in {classifier.serving.views} orientation(s) (`serving.views`: "
        "its quarter turns, and with 8 their mirror images), the features and logits averaged, "
        "so the call does not depend on how the detector was turned on the sky; the "
        "temperature and thresholds were fitted on those averages. Version 2.2.0 is the 2.1.0 "
        "network calibrated again with four views (`stampflow train morphology --weights`), "
        "chosen on validation (accuracy 0.981 -> 0.987) and the airy calibration family "
        "(0.952 -> 0.957, calibrated NLL 0.113 -> 0.099; eight views: 0.957, 0.097), never on "
        "these sets. On them, 2.1.0 with one view scored: own 0.979, psf:jwst 0.975, "
        "crowded_detector 0.856, particles 0.879 (ECE 0.033), all held out 0.816 (unflagged "
        "0.866)."
    )
    report.image("risk_coverage.png", "Risk-coverage curves on every set")
    report.image("reliability.png", "Reliability before and after temperature scaling")
    report.image("confusion.png", "Confusion matrices (counts)")

    report.heading("Representation")
    report.image("tsne.png", "t-SNE of the penultimate features, by class and by family set")
    report.table(
        ["class", "mean silhouette (own held-out)"],
        [[name, float(silhouettes[labels_all[own] == k].mean())] for k, name in enumerate(CLASSES)],
    )
    report.table(["set", "silhouette by true class"], [[k, v] for k, v in set_silhouette.items()])

    report.heading("What the model gets wrong, with the physics")
    report.text("Accuracy (and image count) by physical condition, on each set:")
    report.table(["condition", *sets], _breakdown(sets, evaluations))
    report.image("mistakes.png", "Out-of-family mistakes (true -> predicted)")
    report.table(["set", "#", "true", "predicted", "p", "flagged", *SHOWN_PARAMS], mistake_rows)

    report.heading("What would still differ on real JWST data, and how to check")
    report.text(
        "- **PSF**: real NIRCam PSFs vary across the field and with time (wavefront drift, "
        "tilt events), have detector charge diffusion and the inter-pixel capacitance "
        "that broaden the core by ~10%; our bank has neither field dependence nor IPC. "
        "Check: run the sanity sets with WebbPSF/STPSF PSFs of the observation date, and "
        "the classifier on real isolated stars from NIRCam calibration fields "
        "(e.g. the LMC astrometric field): they must come out `no_gas` or ambiguous.\n"
        "- **Resampling**: real stage-3 mosaics are drizzled from dithered exposures onto "
        'a tangent-plane grid; F200W comes from the SW detectors at 0.031", so we bin it '
        "2x2. Real frames carry a WCS rotation: stripes and spikes at any angle. Check: "
        "pipeline-processed simulations (MIRAGE) through `calwebb_image3`.\n"
        "- **Dust physics**: grain optical depth, scattering (at 2 um scattered starlight "
        "is not negligible), PAH and ice features in F277W/F356W, and temperature gradients "
        "beyond r^-0.4 are absent. Check: known objects - WR 140's nested shells, WR 112/WR "
        "104 pinwheels, the Egg/Red Rectangle bipolars, Apep - with their literature classes.\n"
        "- **Priors**: the class balance and the distributions of distance, S/N and "
        "crowding are ours, not a survey's; the calibration (temperature, thresholds) "
        "depends on them. Check: recalibrate on a few hundred labelled real targets and "
        "re-measure ECE and the unflagged accuracy.\n"
        "- **Classes**: real targets mix morphologies (a spiral inside a shell, WR 140) and "
        "include what none of the five names (planetary nebulae, YSO outflows, galaxies "
        "behind a star). The OOD flag should rise on them; watch its rate per field."
    )

    report.heading("Reproduce")
    report.text(
        "```\n.venv/bin/stampflow train morphology --out classifiers/morphology/shipped\n"
        ".venv/bin/stampflow study morphology --out reports/morphology\n```\n"
        f"Training config: `{json.dumps(training, sort_keys=True)}`."
    )
    path = report.write()
    summary = {
        "sets": {name: ev.scores.__dict__ for name, ev in evaluations.items()},
        "sanity": {name: ev.scores.__dict__ for name, ev in sanity_evals.items()},
        "stress_faint_dust": {**stress_eval.scores.__dict__, "right_or_flagged": right_or_flagged},
        "sanity_no_gas_or_flagged": sanity_all,
        "matrix": matrix_rows,
        "minutes": (time.perf_counter() - started) / 60,
    }
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return path

"""Synthetic temporal-bone scans with known labyrinth labels (see ``anatomy``, ``appearance``).

``GENERATOR_VERSION`` changes whenever the anatomy or the appearance model changes,
so a model card can say exactly which generator its training data came from.
1.1: segmenter training draws fluid loss 2.5x as often (``generate.TRAINING_PATHOLOGY``) and
CBCT more often; whole scans (test sets) are identical to 1.0 for the same seeds.
1.2: 60 % of segmenter patches at temporal-bone resolutions (``generate.FINE_SHARE``); whole
scans still identical to 1.0. Fraction targets (``generate.soft_labels``) are a training
option, recorded per run as ``soft_labels`` (first used under 1.1).
1.3: 30 % of segmenter patches rendered on a random scan grid and resampled as the pipeline
does (``generate.scan_grid_render``); whole scans still identical to 1.0.
1.4: an otic-capsule wall (``anatomy.CAPSULE_WALL_MM``) of bone around the labyrinth, painted
over air cells and the middle ear: before, air came within 0.5 mm of a fifth of the canal
voxels (``experiments/capsule_check.py``), so on CT canals ran through air. Same heads and the same labels as 1.0-1.3 for the same
seeds; the images differ around the labyrinth, so test sets are regenerated.
1.5: 15 % of training samples have plain surroundings (``generate.PLAIN_SHARE``,
``appearance.plain_context``), so the labyrinth is found by its own shape (phantoms); whole
scans (test sets) identical to 1.4.
1.6: the facial-nerve canal, the cochlear aqueduct and the subarcuate canal
(``anatomy.Ear._build_bone_channels``): canal-like channels through the petrous bone that a
model must leave out, dark in bright bone on CT as the canals are. Drawn from each ear's own
generator after everything else, so heads and labels are identical to 1.4-1.5; images differ
along the channels, so test sets are regenerated.
1.7: a labyrinthectomy filled with soft tissue is a drilled cavity (the canals' planes and the
vestibule), no longer soft tissue in the exact canal shapes, which on CT is a normal labyrinth
labelled absent (``anatomy.Ear._build_labyrinth``). No new random draws: every other ear is
identical to 1.6; test sets are regenerated.
1.8: segmenter training draws a labyrinthectomy 6x as often as test volumes
(``generate.TRAINING_LABYRINTHECTOMY``; other fluid loss stays 2.5x); whole scans identical to 1.7.
1.9: the drilled cavity opens through the mastoid (``anatomy.Ear._mastoidectomy``), the route a
transmastoid labyrinthectomy takes, with no capsule wall of its own and the vestibule's part grown
1 mm instead of 0.5: under 1.7-1.8 it was a vestibule-shaped chamber in capsule bone, which a model
read as a vestibule on CT. Only drilled ears change (no new random draws); test sets are regenerated.
"""
GENERATOR_VERSION = "1.9"


def add_arguments(parser):
    parser.add_argument("-o", "--output", required=True,
                        help="folder to fill with images/<case>.nrrd, labels/<case>.nrrd and cases.json")
    parser.add_argument("-n", "--count", type=int, default=24, help="number of volumes")
    parser.add_argument("--seed", type=int, default=0, help="first seed; case i uses seed + i")
    parser.add_argument("--family", choices=["mr", "ct", "cbct", "random"], default=None,
                        help="contrast family (default: cycle mr, ct, mr, cbct, ...)")
    parser.add_argument("--fov", choices=["ear", "slab", "head"], default=None,
                        help="field of view (default: cycle ear, slab, slab, ear, ...)")
    parser.add_argument("--max-voxels", type=int, default=8_000_000,
                        help="coarsen the voxel size until a volume has at most this many voxels")


def run(args) -> int:
    """Write a synthetic test set: images/, labels/ (same names) and a cases.json describing each case.

    ``innerear-seg segment OUT/images`` and ``innerear-seg evaluate --ref OUT/labels`` then
    match by name, and ``innerear-seg train --data OUT`` reads the pairs.
    """
    from pathlib import Path

    from .generate import generate_volume

    out = Path(args.output)
    cycle = ["mr", "ct", "mr", "cbct", "mr", "random"]
    cases = []
    for i in range(args.count):
        family = args.family or cycle[i % len(cycle)]
        fov = args.fov or ("ear", "slab", "slab", "ear")[i % 4]
        image, labels, info = generate_volume(args.seed + i, family=family, fov=fov,
                                               max_voxels=args.max_voxels)
        name = f"synth_{args.seed + i:05d}"
        write_pair(out, name, image, labels)
        cases.append({"name": name, **info})
        print(f"{name}: {info['family']:6s} {info['fov']:5s} {info['orientation']:8s} "
              f"spacing {', '.join(f'{s:.2f}' for s in info['spacing'])} size {info['size']}", flush=True)
    write_cases(out, cases)
    return 0


def set_arguments(argv, description, seed, count=12, flags=None):
    """Parsed ``-o/--output``, ``-n/--count``, ``--seed`` and the on/off ``flags`` ({option: help})
    of a script that writes a case set."""
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("-n", "--count", type=int, default=count)
    ap.add_argument("--seed", type=int, default=seed)
    for option, help_text in (flags or {}).items():
        ap.add_argument(option, action="store_true", help=help_text)
    return ap.parse_args(argv)


def write_pair(out, name, image, labels) -> None:
    """``out/images/<name>.nrrd`` and ``out/labels/<name>.nrrd``, each under a temporary name first:
    a set being written never holds half a file."""
    from pathlib import Path

    import SimpleITK as sitk

    for img, sub in ((image, "images"), (labels, "labels")):
        folder = Path(out) / sub
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.tmp.nrrd"
        sitk.WriteImage(img, str(tmp), True)
        tmp.replace(folder / f"{name}.nrrd")


def write_cases(out, cases, **extra) -> None:
    """``out/cases.json``: the generator version, ``extra`` entries and one entry per case."""
    import json
    from pathlib import Path

    Path(out, "cases.json").write_text(json.dumps({"generator_version": GENERATOR_VERSION, **extra,
                                                   "cases": cases}, indent=2))

"""Synthetic two-ear slabs in which at least one ear has had a labyrinthectomy (vestibule and
canals filled with bone or soft tissue), in the layout of ``innerear-seg synth``: does a model
still paint a vestibule and canals that are gone? Heads are taken in seed order from --seed on;
contrasts cycle MR, CT, CBCT, random.

  python release/make_labyrinthectomy_set.py -o runs/lxset -n 12 --seed 600000
"""
import sys

from InnerEarSegLib.synth import set_arguments, write_cases, write_pair
from InnerEarSegLib.synth.generate import generate_volume, volume_head

FAMILIES = ("mr", "ct", "cbct", "random")


def operated_sides(seed):
    """Sides of ``generate_volume(seed)``'s head whose vestibule is gone."""
    return [side for side, ear in volume_head(seed).ears.items() if not any(lbl == 2 for lbl, _ in ear.layers)]


def main(argv=None):
    args = set_arguments(argv, __doc__.splitlines()[0], seed=600000)
    cases, seed = [], args.seed
    while len(cases) < args.count:
        sides = operated_sides(seed)
        if sides:
            image, labels, info = generate_volume(seed, family=FAMILIES[len(cases) % 4], fov="slab",
                                                  max_voxels=8_000_000)
            name = f"lx_{seed}"
            write_pair(args.output, name, image, labels)
            cases.append({"name": name, **info, "labyrinthectomy": sides})
            print(f"{name}: {info['family']:6s} labyrinthectomy {', '.join(sides)}", flush=True)
        seed += 1
    write_cases(args.output, cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())

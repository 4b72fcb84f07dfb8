"""Validation tables of the surgical-planning measures (``InnerEarSegLib/outputs/planning.py``, docs/planning.md).

  synthetic   ears drawn by the synthetic generator (``InnerEarSegLib/synth/anatomy.py``), labels
              painted on a fine grid in head coordinates; the truth is read from the generator's
              own solids: the cochlear spiral's centreline (axis, turns, round window) and the
              canals' arcs (planes, radii).
  real        the labelled real CT ears of Wimmer et al. (Data in Brief 2019; Zenodo
              doi:10.5281/zenodo.3355272, CC BY 4.0): labels are the whole labyrinth, so a cochlea
              is first cut from it by a geometric rule (``cochlea_from_labyrinth``) that uses no
              landmark of theirs; compared with their modiolar axis (Z), round window (RW), and the
              A-value measured on the same cochlea along their axes.
  labels      any folder of label maps (``*_labels.nii.gz`` as ``innerear-seg segment`` writes,
              or ``.nrrd``/``.nii.gz`` with "labels" in the name) matched to the real ears by the
              ear ID in the file name; their cochlea label (1) is used as it is. Files named like
              the reference (``*CT_LABELS*``) are whole-labyrinth maps and are cut as above.

Usage:
  python release/planning_validation.py synthetic -n 24
  python release/planning_validation.py real [--labels FOLDER] [--spacing MM]
  python release/planning_validation.py figure F02 -o docs/planning_F02.png
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InnerEarSegLib.core import labels as L
from InnerEarSegLib.training import cochlea_split as S
from InnerEarSegLib.outputs import planning as P

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "ct-wimmer"
REAL_IDS = ("F01", "F02", "F03", "F04", "F05", "F06", "F08", "T01", "T02", "T03", "T04")


# ---------------------------------------------------------------- real ears

def cochlea_from_labyrinth(mask_zyx, image):
    """The cochlea cut from a whole-labyrinth mask by ``cochlea_split.cochlea_mask`` (LPS points)."""
    return S.voxel_points(S.cochlea_mask(mask_zyx, image), image)


def real_landmarks(ear_id):
    """Their landmarks and cochlear axes, RAS in the file, returned in LPS."""
    d = json.loads((REAL / f"{ear_id}_DESC.json").read_text())
    lps = lambda v: np.array([-v[0], -v[1], v[2]], float)  # noqa: E731
    out = {k: lps(v) for k, v in d["LANDMARKS"].items()}
    out.update({k: lps(v) for k, v in d["COORD"].items()})
    return out


def reference_frame(lm):
    """Their cochlear view: origin C, z their modiolar axis, x toward their RW."""
    z = P.unit_vector(lm["ZAXIS"])
    x, y = P.orthonormal(z, lm["RW"] - lm["C"])
    return {"origin": lm["C"], "x": x, "y": y, "z": z}


def coarser(image, spacing_mm):
    """``image`` (a label map) on an isotropic ``spacing_mm`` grid over the same region, each label
    kept where its linearly interpolated mask is over one half: what a coarser scan would label."""
    size = [int(round(n * s / spacing_mm)) for n, s in zip(image.GetSize(), image.GetSpacing())]
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing([spacing_mm] * 3)
    ref.SetDirection(image.GetDirection())
    ref.SetOrigin(image.TransformContinuousIndexToPhysicalPoint([-0.5 + 0.5 * spacing_mm / s
                                                                 for s in image.GetSpacing()]))
    out = np.zeros(size[::-1], np.uint8)
    a = sitk.GetArrayFromImage(image)
    for value in np.unique(a[a > 0]):
        mask = sitk.GetImageFromArray((a == value).astype(np.float32))
        mask.CopyInformation(image)
        out[sitk.GetArrayFromImage(sitk.Resample(mask, ref, sitk.Transform(), sitk.sitkLinear, 0.0)) > 0.5] = value
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(ref)
    return result


def cochlea_points_from_file(path, spacing_mm=None):
    image = sitk.ReadImage(str(path))
    if spacing_mm:
        image = coarser(image, spacing_mm)
    a = sitk.GetArrayFromImage(image)
    if "CT_LABELS" in Path(path).name:   # their whole-labyrinth reference (0/1)
        return cochlea_from_labyrinth(a > 0, image), image
    return S.voxel_points(a == L.COCHLEA, image), image


def real_table(label_folder=None, spacing_mm=None):
    rows = []
    for ear_id in REAL_IDS:
        if label_folder:
            found = sorted(p for p in Path(label_folder).rglob(f"*{ear_id}*") if p.name.endswith((".nii.gz", ".nrrd"))
                           and "labels" in p.name.lower())
            if not found:
                print(f"{ear_id}: no label map in {label_folder}", file=sys.stderr)
                continue
            path = found[0]
        else:
            path = REAL / f"{ear_id}_CT_LABELS.nii.gz"
        pts, image = cochlea_points_from_file(path, spacing_mm)
        lm = real_landmarks(ear_id)
        spacing = image.GetSpacing()
        m = P.cochlea_measures(pts, max(spacing), float(np.prod(spacing)))
        row = {"ear": ear_id, "voxels": len(pts), "status": m["values"]["A_mm"]["status"]}
        if m["landmarks"]:
            ref = P.a_b_h(pts, reference_frame(lm), max(0.3, max(spacing)))
            row.update(axis_deg=P.angle_deg(m["axes"]["modiolar_axis"], lm["ZAXIS"]),
                       rw_mm=float(np.linalg.norm(m["landmarks"]["round_window"] - lm["RW"])),
                       helicotrema_mm=float(np.linalg.norm(m["landmarks"]["helicotrema"] - lm["A"])),
                       A=m["values"]["A_mm"]["value"], A_ref=ref["A"] if ref else None,
                       B=m["values"]["B_mm"]["value"], H=m["values"]["H_mm"]["value"],
                       turns=m["values"]["turns"]["value"], lw=m["values"]["lateral_wall_length_mm"]["value"],
                       cdl_oc=m["values"]["cdl_organ_of_corti_mm"]["value"])
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def print_real(rows):
    print("| ear | axis vs their Z (deg) | RW (mm) | helicotrema vs A (mm) | A (mm) | A on their axes (mm) "
          "| A error (mm) | B (mm) | H (mm) | turns | lateral wall (mm) | CDL OC 4.16A-4 (mm) |")
    print("|---" * 12 + "|")
    f = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    for r in rows:
        err = abs(r["A"] - r["A_ref"]) if r.get("A") is not None and r.get("A_ref") is not None else None
        print(f"| {r['ear']} | {f(r.get('axis_deg'), 1)} | {f(r.get('rw_mm'))} | {f(r.get('helicotrema_mm'))} "
              f"| {f(r.get('A'))} | {f(r.get('A_ref'))} | {f(err)} | {f(r.get('B'))} | {f(r.get('H'))} "
              f"| {f(r.get('turns'))} | {f(r.get('lw'), 1)} | {f(r.get('cdl_oc'), 1)} |")
    for r in rows:
        if r.get("status") != P.OK:
            print(f"\n{r['ear']}: {r.get('status')}")
    ok = [r for r in rows if r.get("axis_deg") is not None]
    good = [r for r in ok if r["axis_deg"] <= 10 and r["rw_mm"] <= 1.5]
    print(f"\naxis within 10 deg: {sum(r['axis_deg'] <= 10 for r in ok)}/{len(rows)}; "
          f"round window within 1.5 mm: {sum(r['rw_mm'] <= 1.5 for r in ok)}/{len(rows)}; both: {len(good)}/{len(rows)}; "
          f"A within 0.7 mm of A on their axes on those: "
          f"{sum(abs(r['A'] - r['A_ref']) <= 0.7 for r in good)}/{len(good)}")


# ---------------------------------------------------------------- synthetic ears

def spiral_truth(centres):
    """Axis, centre, turns and unwrapped angles of a conical spiral centreline, by fitting the
    logarithmic spiral the generator draws (exact for it): log r linear in the unwrapped angle."""
    from scipy.optimize import least_squares
    c0 = centres.mean(axis=0)
    a0 = np.linalg.eigh(np.cov((centres - c0).T))[1][:, 0]
    e1, e2 = P.orthonormal(a0)

    def frame(p):
        axis = P.unit_vector(a0 + p[0] * e1 + p[1] * e2)
        return axis, c0 + p[2] * e1 + p[3] * e2

    def residual(p):
        axis, c = frame(p)
        _, r, th = P.cylindrical(centres, c, axis, e1)
        t = np.unwrap(th)
        M = np.c_[np.ones_like(t), t]
        return np.log(r) - M @ np.linalg.lstsq(M, np.log(r), rcond=None)[0]

    p = least_squares(residual, np.zeros(4)).x
    axis, c = frame(p)
    h, _, th = P.cylindrical(centres, c, axis, e1)
    if h[-1] < h[0]:
        axis = -axis
    t = np.unwrap(P.cylindrical(centres, c, axis, e1)[2])
    return axis, c, abs(t[-1] - t[0]) / (2 * np.pi)


def synthetic_ear(seed, spacing=0.15):
    """(points by label, truth) of the left ear of synthetic head ``seed``, painted in head coordinates."""
    from InnerEarSegLib.synth.anatomy import Head
    from InnerEarSegLib.synth.shapes import Tube
    head = Head(seed)
    ear = head.ears["left"]
    lab = [(label, s) for label, s in ear.layers if label in (1, 2, 3)]
    lo = np.min([s.lo for _, s in lab], axis=0) - 0.5
    hi = np.max([s.hi for _, s in lab], axis=0) + 0.5
    axes = [np.arange(a, b, spacing) for a, b in zip(lo, hi)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    painted = head._paint(grid)
    points = {v: grid[painted == v] for v in (1, 2, 3)}
    tubes = [s for label, s in ear.layers if label == 1 and isinstance(s, Tube)]
    spiral = tubes[0]   # the first cochlea solid is the duct; the second joins it to the vestibule
    axis, c, turns = spiral_truth(spiral.centers)
    start = spiral.centers[0]
    radial = P.unit_vector((start - c) - np.dot(start - c, axis) * axis)
    rw = start + spiral.radii[0] * radial
    arcs = []
    for label, s in ear.layers:
        if label == 3 and isinstance(s, Tube) and len(s.centers) > 40:
            centre, normal, radius = P.fit_circle(s.centers)
            if np.abs(np.linalg.norm(s.centers - centre, axis=1) - radius).max() < 0.02:
                arcs.append((normal, radius))
    truth = {"axis": axis, "centre": c, "turns": turns, "rw": rw, "arcs": arcs}
    return points, truth


def synthetic_table(count, seed0, spacing):
    rows = []
    for seed in range(seed0, seed0 + count):
        points, truth = synthetic_ear(seed, spacing)
        m = P.ear_measures(points, (spacing,) * 3, whole_head=False)
        frame = P.cochlear_frame(truth["centre"], truth["axis"], truth["rw"])
        ref = P.a_b_h(points[1], frame, max(0.3, spacing))
        row = {"seed": seed, "turns_true": truth["turns"], "A_true": ref["A"] if ref else None}
        if m["landmarks"]:
            row.update(axis_deg=P.angle_deg(m["axes"]["modiolar_axis"], truth["axis"]),
                       rw_mm=float(np.linalg.norm(m["landmarks"]["round_window"] - truth["rw"])),
                       A=m["values"]["A_mm"]["value"], turns=m["values"]["turns"]["value"])
        v = m["values"]
        if len(truth["arcs"]) == 3 and v["angle_lateral_superior_deg"]["status"] == P.OK:
            sup, post, lat = truth["arcs"]   # the generator's order
            true_angles = {"lateral_superior": P.angle_deg(lat[0], sup[0]),
                           "lateral_posterior": P.angle_deg(lat[0], post[0]),
                           "superior_posterior": P.angle_deg(sup[0], post[0])}
            row["plane_angle_err_deg"] = max(abs(v[f"angle_{k}_deg"]["value"] - t) for k, t in true_angles.items())
            row["radius_err_mm"] = max(abs(v[f"{n}_canal_radius_mm"]["value"] - arc[1])
                                       for n, arc in (("superior", sup), ("posterior", post), ("lateral", lat)))
        else:
            row["canals"] = v["angle_lateral_superior_deg"]["status"] if len(truth["arcs"]) == 3 else \
                f"generator drew {len(truth['arcs'])} canals"
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def print_synthetic(rows):
    f = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    print("| seed | axis error (deg) | RW error (mm) | A (mm) | A true (mm) | A error (mm) | turns | turns true "
          "| turns error | canal plane-angle error, worst (deg) | canal radius error, worst (mm) |")
    print("|---" * 11 + "|")
    for r in rows:
        a_err = abs(r["A"] - r["A_true"]) if r.get("A") is not None and r.get("A_true") is not None else None
        t_err = abs(r["turns"] - r["turns_true"]) if r.get("turns") is not None else None
        r["A_err"], r["turns_err"] = a_err, t_err
        print(f"| {r['seed']} | {f(r.get('axis_deg'), 1)} | {f(r.get('rw_mm'))} | {f(r.get('A'))} | {f(r['A_true'])} "
              f"| {f(a_err)} | {f(r.get('turns'))} | {f(r['turns_true'])} | {f(t_err)} "
              f"| {f(r.get('plane_angle_err_deg'), 1) if 'canals' not in r else r['canals']} | {f(r.get('radius_err_mm'))} |")
    n = len(rows)
    count = lambda key, lim: sum(r.get(key) is not None and r[key] <= lim for r in rows)  # noqa: E731
    med = lambda key: np.median([r[key] for r in rows if r.get(key) is not None])  # noqa: E731
    print(f"\n{n} ears. A within 0.5 mm: {count('A_err', 0.5)}/{n} (median error {med('A_err'):.2f} mm); "
          f"turns within 0.25: {count('turns_err', 0.25)}/{n} (median {med('turns_err'):.2f}); "
          f"canal plane angles within 5 deg: {count('plane_angle_err_deg', 5)}/"
          f"{sum('plane_angle_err_deg' in r for r in rows)} ears with three canals measured; "
          f"axis median error {med('axis_deg'):.1f} deg; round window median error {med('rw_mm'):.2f} mm")


def figure(ear_id, path):
    """The preview of one real ear (its CT; the reference labyrinth with the geometric cochlea as
    label 1 and the rest as label 2), with the cochlear view and A and B: docs/planning.md's figure."""
    from InnerEarSegLib.outputs.preview import render_preview
    from InnerEarSegLib.core.result import SegmentationResult
    labels = sitk.ReadImage(str(REAL / f"{ear_id}_CT_LABELS.nii.gz"))
    mask = sitk.GetArrayFromImage(labels) > 0
    cochlea = cochlea_from_labyrinth(mask, labels)
    out = np.where(mask, L.VESTIBULE, 0).astype(np.uint8)
    idx = np.round([labels.TransformPhysicalPointToContinuousIndex(p.tolist()) for p in cochlea]).astype(int)
    out[idx[:, 2], idx[:, 1], idx[:, 0]] = L.COCHLEA
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(labels)
    result = SegmentationResult(labels=image, sides=None,
                                source=f"{ear_id} (Wimmer et al. 2019): reference labyrinth, geometric cochlea")
    render_preview(sitk.ReadImage(str(REAL / f"{ear_id}_CT_RAW.nii.gz")), result, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("synthetic")
    s.add_argument("-n", "--count", type=int, default=24)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--spacing", type=float, default=0.15)
    r = sub.add_parser("real")
    r.add_argument("--labels", type=Path, default=None, help="folder of label maps (default: their labels)")
    r.add_argument("--spacing", type=float, default=None,
                   help="resample the label maps to this isotropic voxel size (mm) first, as a coarser scan")
    fig = sub.add_parser("figure")
    fig.add_argument("ear", choices=REAL_IDS)
    fig.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.what == "figure":
        figure(args.ear, args.output)
    elif args.what == "synthetic":
        print_synthetic(synthetic_table(args.count, args.seed, args.spacing))
    else:
        print_real(real_table(args.labels, args.spacing))
    return 0


if __name__ == "__main__":
    sys.exit(main())

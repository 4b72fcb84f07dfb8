"""Surgical-planning measures on hand-built shapes whose answers are known: a conical spiral tube
(axis, turns, A) and tori (canal planes, radii); quality flags; the markups and output files."""
import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from InnerEarSegLib.core import labels as L
from InnerEarSegLib.outputs import planning as P
from InnerEarSegLib.synth.shapes import Tube

SPACING = 0.15


def grid_points(lo, hi, spacing=SPACING):
    axes = [np.arange(a, b, spacing) for a, b in zip(lo, hi)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def frame(axis):
    axis = P.unit_vector(axis)
    e1, e2 = P.orthonormal(axis)
    return axis, e1, e2


def spiral(turns=2.5, r0=3.6, r1=1.1, rho=(0.9, 0.5), height=2.2, axis=(0.3, 0.5, 0.81), centre=(1.0, -2.0, 0.5)):
    """Voxel centres of a tapered tube along a logarithmic spiral, and the answers: axis, the
    start (round window) on the outer wall, and A (outer wall at the start to the outer wall
    half a turn on, across the axis, in the plane across the axis)."""
    axis, e1, e2 = frame(axis)
    centre = np.asarray(centre, float)
    t = np.linspace(0, 2 * np.pi * turns, int(turns * 120))
    f = t / t[-1]
    r = r0 * (r1 / r0) ** f
    pts = centre + r[:, None] * (np.cos(t)[:, None] * e1 + np.sin(t)[:, None] * e2) + (height * f)[:, None] * axis
    radii = rho[0] + (rho[1] - rho[0]) * f
    tube = Tube(pts, radii)
    grid = grid_points(tube.lo - 0.2, tube.hi + 0.2)
    voxels = grid[tube.contains(grid)]
    half = np.argmin(np.abs(t - np.pi))
    truth = {"axis": axis, "turns": turns, "rw": pts[0] + radii[0] * e1,
             "A": r0 + radii[0] + r[half] + radii[half]}
    return voxels, truth


@pytest.fixture(scope="module")
def helix():
    return spiral()


@pytest.fixture(scope="module")
def helix_measures(helix):
    voxels, _ = helix
    return P.cochlea_measures(voxels, SPACING, SPACING ** 3)


def torus(centre, normal, radius, tube=0.45):
    normal, e1, e2 = frame(normal)
    t = np.linspace(0, 2 * np.pi * 0.75, 150)   # a canal is an open arc of about 270 degrees
    shape = Tube(np.asarray(centre) + radius * (np.cos(t)[:, None] * e1 + np.sin(t)[:, None] * e2), tube)
    grid = grid_points(shape.lo - 0.2, shape.hi + 0.2)
    return grid[shape.contains(grid)]


def three_canals():
    """Three arcs in planes at known angles: lateral nearly horizontal, superior higher than posterior."""
    planes = {"lateral": ((0, 0, 0), (0.0, 0.26, 0.97), 2.3),
              "superior": ((0, 2, 4), (0.7, 0.7, 0.1), 3.2),
              "posterior": ((-1, -4, 2), (0.7, -0.7, 0.05), 3.0)}
    voxels = np.vstack([torus(*p) for p in planes.values()])
    return voxels, planes


def test_spiral_axis_round_window_and_a_value(helix, helix_measures):
    _, truth = helix
    m = helix_measures
    assert P.angle_deg(m["axes"]["modiolar_axis"], truth["axis"], undirected=False) < 6.0
    assert np.linalg.norm(m["landmarks"]["round_window"] - truth["rw"]) < 0.6
    assert m["values"]["A_mm"]["status"] == P.OK
    assert abs(m["values"]["A_mm"]["value"] - truth["A"]) < 0.4


def test_spiral_turns_and_lateral_wall(helix, helix_measures):
    _, truth = helix
    values = helix_measures["values"]
    assert abs(values["turns"]["value"] - truth["turns"]) < 0.25
    # the lateral wall is longer than the centreline and shorter than a circle of the starting radius per turn
    length = values["lateral_wall_length_mm"]["value"]
    assert 2 * np.pi * 1.5 * truth["turns"] < length < 2 * np.pi * 4.5 * truth["turns"]


@pytest.mark.parametrize("turns", [1.6, 2.75])
def test_other_turn_counts(turns):
    voxels, truth = spiral(turns=turns, axis=(-0.6, 0.2, 0.77))
    values = P.cochlea_measures(voxels, SPACING, SPACING ** 3)["values"]
    assert abs(values["turns"]["value"] - turns) < 0.25


def test_duct_length_formulas_follow_a(helix_measures):
    v = helix_measures["values"]
    a = v["A_mm"]["value"]
    assert v["cdl_organ_of_corti_mm"]["value"] == pytest.approx(4.16 * a - 4, abs=1e-3)
    assert v["cdl_lateral_wall_mm"]["value"] == pytest.approx(4.16 * a - 2.7, abs=1e-3)
    assert v["two_turn_length_organ_of_corti_mm"]["value"] == pytest.approx(3.65 * (a - 1), abs=1e-3)
    assert v["two_turn_length_lateral_wall_mm"]["value"] == pytest.approx(3.65 * (a - 0.7), abs=1e-3)


def test_b_is_across_a_and_lines_match_values(helix_measures):
    m = helix_measures
    a0, a1 = m["lines"]["A"]
    b0, b1 = m["lines"]["B"]
    assert np.linalg.norm(a1 - a0) == pytest.approx(m["values"]["A_mm"]["value"], abs=1e-3)
    assert np.linalg.norm(b1 - b0) == pytest.approx(m["values"]["B_mm"]["value"], abs=1e-3)
    assert P.angle_deg(a1 - a0, b1 - b0) == pytest.approx(90, abs=1e-6)
    assert P.angle_deg(a1 - a0, m["axes"]["modiolar_axis"]) == pytest.approx(90, abs=1e-6)
    assert m["values"]["B_mm"]["value"] < m["values"]["A_mm"]["value"]


def test_canal_planes_angles_and_radii():
    voxels, planes = three_canals()
    m = P.canal_measures(voxels, SPACING, SPACING ** 3, whole_head=True)
    v = m["values"]
    for name, (_, normal, radius) in planes.items():
        assert P.angle_deg(m["planes"][name]["normal"], normal) < 3.0, name
        assert v[f"{name}_canal_radius_mm"]["value"] == pytest.approx(radius, abs=0.2)
    for a, b in (("lateral", "superior"), ("lateral", "posterior"), ("superior", "posterior")):
        true = P.angle_deg(planes[a][1], planes[b][1])
        assert v[f"angle_{a}_{b}_deg"]["value"] == pytest.approx(true, abs=3.0)
    assert v["lateral_canal_to_axial_deg"]["value"] == pytest.approx(P.angle_deg(planes["lateral"][1], [0, 0, 1]),
                                                                      abs=3.0)


def test_axial_angle_only_for_a_whole_head():
    voxels, _ = three_canals()
    v = P.canal_measures(voxels, SPACING, SPACING ** 3, whole_head=False)["values"]
    assert v["lateral_canal_to_axial_deg"]["value"] is None
    assert "whole head" in v["lateral_canal_to_axial_deg"]["status"]


def test_one_canal_is_not_three():
    voxels = torus((0, 0, 0), (0, 0, 1), 2.5)
    v = P.canal_measures(voxels, SPACING, SPACING ** 3, whole_head=False)["values"]
    assert v["angle_lateral_superior_deg"]["value"] is None
    assert v["angle_lateral_superior_deg"]["status"].startswith("not computed: only 1 of the three")


@pytest.mark.parametrize("case, reason", [("empty", "no cochlea labelled"), ("fragment", "fragment"),
                                          ("coarse", "too coarse")])
def test_quality_flags_instead_of_numbers(helix, case, reason):
    voxels, _ = helix
    spacing = SPACING
    if case == "empty":
        voxels = voxels[:0]
    elif case == "fragment":
        voxels = voxels[:200]
    else:
        spacing = 0.8
    values = P.cochlea_measures(voxels, spacing, spacing ** 3)["values"]
    for key in ("A_mm", "B_mm", "H_mm", "turns", "cdl_organ_of_corti_mm"):
        assert values[key]["value"] is None and reason in values[key]["status"]


def test_spiral_flagged_between_a_and_turn_limits(helix):
    """Fine enough for A, too coarse for turns: A given, turns flagged."""
    voxels, _ = helix
    values = P.cochlea_measures(voxels, 0.5, SPACING ** 3)["values"]
    assert values["A_mm"]["status"] == P.OK
    assert values["turns"]["value"] is None and "turns merge" in values["turns"]["status"]


def labels_image(helix_voxels, canal_voxels, spacing=SPACING):
    """A label image (LPS, identity direction) holding a cochlea spiral and three canal arcs."""
    pts = np.vstack([helix_voxels, canal_voxels])
    lo = pts.min(0) - 1
    size = np.ceil((pts.max(0) + 1 - lo) / spacing).astype(int)
    arr = np.zeros(size[::-1], np.uint8)
    for value, p in ((L.COCHLEA, helix_voxels), (L.CANALS, canal_voxels)):
        i, j, k = np.round((p - lo) / spacing).astype(int).T
        arr[k, j, i] = value
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((spacing,) * 3)
    image.SetOrigin(lo.tolist())
    return image


@pytest.fixture
def left_ear(helix):
    """(labels, result): the spiral and three canal arcs, all labelled left."""
    from InnerEarSegLib.core.result import SegmentationResult
    voxels, _ = helix
    canals, _ = three_canals()
    labels = labels_image(voxels, canals + [0, 12.0, 0])
    sides = sitk.Cast(labels > 0, sitk.sitkUInt8) * 2
    sides.CopyInformation(labels)
    return labels, SegmentationResult(labels=labels, sides=sides)


def test_outputs_csv_json_and_markups(helix, tmp_path):
    from InnerEarSegLib.core.result import SegmentationResult
    from InnerEarSegLib.outputs.write import write_outputs
    voxels, truth = helix
    canals, _ = three_canals()
    labels = labels_image(voxels, canals + [0, 12.0, 0])
    sides = sitk.Cast(labels > 0, sitk.sitkUInt8) * 2   # all on the left
    sides.CopyInformation(labels)
    result = SegmentationResult(labels=labels, sides=sides)
    write_outputs(result, tmp_path, "s", labels, formats=("json",))
    doc = json.loads((tmp_path / "s" / "s_stats.json").read_text())
    ear = doc["measures"]["ears"]["left"]
    a = ear["values"]["A_mm"]["value"]
    assert abs(a - truth["A"]) < 0.5
    rw = ear["landmarks"]["round_window"]
    view = ear["cochlear_view"]
    assert np.dot(np.subtract(rw["lps"], view["origin_lps"]), view["normal_lps"]) == pytest.approx(0, abs=1e-6)
    assert rw["ras"] == pytest.approx([-rw["lps"][0], -rw["lps"][1], rw["lps"][2]])
    with open(tmp_path / "s" / "s_measures.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["side"] for r in rows] == ["left"]
    assert float(rows[0]["A_mm"]) == pytest.approx(a)
    assert rows[0]["angle_lateral_superior_deg_status"] == P.OK
    markups = json.loads((tmp_path / "s" / "s_measures.mrk.json").read_text())["markups"]
    by_name = {m["name"]: m for m in markups}
    line = by_name["A left"]
    assert line["type"] == "Line" and line["coordinateSystem"] == "LPS"
    ends = np.array([p["position"] for p in line["controlPoints"]])
    assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(a, abs=1e-3)
    landmarks = by_name["Cochlea landmarks left"]["controlPoints"]
    assert landmarks[0]["label"].startswith("round window")
    assert landmarks[0]["position"] == pytest.approx(rw["lps"])


def test_markups_load_in_slicer_core(helix_measures, tmp_path):
    """Slicer's own markups reader takes every markup of the file, in LPS, at the written positions."""
    slicer = pytest.importorskip("slicer")
    path = tmp_path / "m.mrk.json"
    P.write_markups(path, {"left": helix_measures})
    written = json.loads(path.read_text())["markups"]
    scene = slicer.vtkMRMLScene()
    storage = slicer.vtkMRMLMarkupsJsonStorageNode()
    scene.AddNode(storage)
    kinds = {"Fiducial": "vtkMRMLMarkupsFiducialNode", "Line": "vtkMRMLMarkupsLineNode",
             "Curve": "vtkMRMLMarkupsCurveNode"}
    for i, markup in enumerate(written):
        node = storage.AddNewMarkupsNodeFromFile(str(path), "", i)
        assert node is not None and node.GetClassName() == kinds[markup["type"]]
        assert node.GetNumberOfControlPoints() == len(markup["controlPoints"])
        ras = [0.0, 0.0, 0.0]
        node.GetNthControlPointPosition(0, ras)
        lps = markup["controlPoints"][0]["position"]
        assert ras == pytest.approx([-lps[0], -lps[1], lps[2]], abs=1e-4)


def test_preview_cochlear_view_draws_a_and_b(helix, tmp_path):
    from matplotlib.figure import Figure
    from InnerEarSegLib.core.result import SegmentationResult
    from InnerEarSegLib.outputs.preview import draw_cochlear_view, preview_figure, render_preview
    voxels, _ = helix
    canals, _ = three_canals()
    labels = labels_image(voxels, canals + [0, 12.0, 0])
    result = SegmentationResult(labels=labels, sides=None)
    ear = P.measures_for_result(result)["both"]
    ax = Figure().add_subplot(1, 1, 1)
    draw_cochlear_view(ax, labels, labels, ear, 0.1)
    drawn = {line.get_label(): line for line in ax.get_lines()}
    a = drawn[f"A {ear['values']['A_mm']['value']:.1f} mm"]
    assert np.ptp(a.get_xdata()) == pytest.approx(ear["values"]["A_mm"]["value"], abs=1e-3)   # along x
    assert f"B {ear['values']['B_mm']['value']:.1f} mm" in drawn
    missing = Figure().add_subplot(1, 1, 1)
    draw_cochlear_view(missing, labels, labels, P.ear_measures({}, (0.15,) * 3, False), 0.1)
    assert "no cochlea labelled" in missing.texts[0].get_text()
    assert render_preview(labels, result, tmp_path / "p.png").stat().st_size > 10000
    given = dict(ear, values={**ear["values"], "A_mm": dict(ear["values"]["A_mm"], value=42.0)})
    figure = preview_figure(labels, result, {"both": given})   # drawn as given, not measured again
    assert "A 42.0 mm" in {line.get_label() for ax in figure.axes for line in ax.get_lines()}


def test_the_writer_measures_once_for_the_stats_the_files_and_the_preview(left_ear, tmp_path, monkeypatch):
    from InnerEarSegLib.outputs.write import write_outputs
    labels, result = left_ear
    calls, measure = [], P.measures_for_result
    monkeypatch.setattr(P, "measures_for_result", lambda r: calls.append(r is result) or measure(r))
    write_outputs(result, tmp_path, "case", labels, formats=("json", "preview"))
    assert calls == [True] and (tmp_path / "case" / "case_preview.png").stat().st_size > 10000


def slicer_logic():
    """(slicer, the module's logic), or the test skipped without slicer-core."""
    slicer = pytest.importorskip("slicer")
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "InnerEarSeg"))
    from InnerEarSegSlicerLib import logic as G
    return slicer, G


def test_slicer_logic_adds_measures_table_and_markups(left_ear):
    """The module's logic (real MRML, no Qt): a measures table with one column per ear and the
    markups in RAS; a second run replaces the first run's nodes."""
    slicer, G = slicer_logic()
    labels, result = left_ear
    scene = slicer.vtkMRMLScene()
    logic = G.InnerEarSegLogic(scene, segmenter=lambda *a, **k: result)
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "ear")
    measures = G.result_measures(result)
    table = G.add_measures(logic, seg, *measures)
    t = table.GetTable()
    names = [t.GetValueByName(r, "measure").ToString() for r in range(t.GetNumberOfRows())]
    a_row = names.index("A_mm")
    expected = P.measures_for_result(result)["left"]["values"]["A_mm"]["value"]
    assert t.GetValueByName(a_row, "left").ToDouble() == pytest.approx(expected)
    assert t.GetValueByName(names.index("turns"), "left status").ToString() == P.OK
    lines = [n for n in scene.GetNodesByClass("vtkMRMLMarkupsLineNode")]
    a_line = next(n for n in lines if n.GetName() == "A left")
    assert a_line.GetLineLengthWorld() == pytest.approx(expected, abs=1e-3)
    assert a_line.GetLocked()
    count = scene.GetNumberOfNodesByClass("vtkMRMLMarkupsNode")
    assert count >= 4
    G.add_measures(logic, seg, *measures)   # again: replaced, not added
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsNode") == count
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 1


def test_slicer_reads_the_measures_the_command_line_wrote(left_ear, tmp_path):
    """The panel's path: the table and markups come from the case folder the writer filled, not
    from measuring again (a value changed in the file is what the table shows)."""
    from InnerEarSegLib.outputs.write import write_outputs
    slicer, G = slicer_logic()
    labels, result = left_ear
    write_outputs(result, tmp_path, "case", labels, formats=("seg", "labels", "json"))
    folder, stats_path = tmp_path / "case", tmp_path / "case" / "case_stats.json"
    stats = json.loads(stats_path.read_text())
    stats["measures"]["ears"]["left"]["values"]["A_mm"]["value"] = 42.0
    stats_path.write_text(json.dumps(stats))
    values, markups = G.read_measures(folder)
    assert markups == json.loads((folder / "case_measures.mrk.json").read_text())
    scene = slicer.vtkMRMLScene()
    table = G.add_measures(G.InnerEarSegLogic(scene), scene.AddNewNodeByClass("vtkMRMLSegmentationNode"),
                           values, markups)
    rows = {row["measure"]: row for row in G.table_rows(table)}
    assert rows["A_mm"]["left"] == 42.0 and rows["turns"]["left status"] == stats["measures"]["ears"]["left"][
        "values"]["turns"]["status"]
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsNode") == len(markups["markups"]) >= 4
    stats["measures"] = {"error": "not computed: ValueError: broken", "ears": {}}   # failed in the command line
    stats_path.write_text(json.dumps(stats))
    assert G.read_measures(folder)[0] == {}
    assert "planning measures not computed: ValueError: broken" in G.read_case_folder(folder).warnings


def test_canals_in_one_plane_are_not_three_canals():
    """Three arcs sharing nearly one plane (spiral turns labelled as canals, say) give no angles."""
    voxels = np.vstack([torus((0, 0, 0), (0, 0, 1), 2.0), torus((0, 0, 3.0), (0, 0.2, 1), 3.0),
                        torus((0, 0, 6.0), (0.2, 0, 1), 4.0)])
    v = P.canal_measures(voxels, SPACING, SPACING ** 3, whole_head=False)["values"]
    assert v["angle_lateral_superior_deg"]["value"] is None
    assert "within 45 degrees of one plane" in v["angle_lateral_superior_deg"]["status"]


def test_short_arcs_are_not_canals():
    normal, e1, e2 = frame((0, 0, 1))
    pieces = []
    for centre, n in (((0, 0, 0), (0, 0, 1)), ((0, 6, 2), (1, 0, 0.1)), ((6, 0, 2), (0, 1, 0.1))):
        n, a, b = frame(n)
        t = np.linspace(0, np.radians(100), 40)   # 100-degree pieces only
        tube = Tube(np.asarray(centre) + 2.5 * (np.cos(t)[:, None] * a + np.sin(t)[:, None] * b), 0.45)
        grid = grid_points(tube.lo - 0.2, tube.hi + 0.2)
        pieces.append(grid[tube.contains(grid)])
    v = P.canal_measures(np.vstack(pieces), SPACING, SPACING ** 3, whole_head=False)["values"]
    assert v["lateral_canal_radius_mm"]["value"] is None
    assert "degrees" in v["lateral_canal_radius_mm"]["status"]


def spiral_with_vestibule(voxels, truth):
    """A spiral joined to a wider ball (the vestibule) and an arc (a canal): the ball, the canal, the labels."""
    axis, e1, _ = frame((0.3, 0.5, 0.81))
    start = truth["rw"]
    ball_centre = start + 2.8 * e1 - 1.0 * axis
    ball = grid_points(ball_centre - 1.9, ball_centre + 1.9)
    ball = ball[np.linalg.norm(ball - ball_centre, axis=1) <= 1.8]
    joint = Tube([start - 0.5 * e1, ball_centre], 0.8)
    g = grid_points(joint.lo, joint.hi)
    joint = g[joint.contains(g)]
    canal = torus(ball_centre + 3.5 * e1 + 2.0 * axis, e1 + 0.3 * axis, 2.5)
    return ball, canal, labels_image(voxels, np.vstack([ball, joint, canal]))


def test_validation_cut_keeps_the_cochlea_and_drops_the_vestibule(helix):
    """The validation script's geometric cochlea (for whole-labyrinth reference labels) gives back the spiral."""
    from conftest import load_script
    script = load_script("planning_validation")
    voxels, truth = helix
    ball, canal, labels = spiral_with_vestibule(voxels, truth)
    mask = sitk.GetArrayFromImage(labels) > 0
    kept = script.cochlea_from_labyrinth(mask, labels)
    kept_keys = {tuple(k) for k in np.round(kept / SPACING).astype(int)}
    share = lambda pts: np.mean([tuple(k) in kept_keys for k in np.round(pts / SPACING).astype(int)])  # noqa: E731
    assert share(voxels) > 0.9
    assert share(ball) < 0.1
    assert share(canal) < 0.1


def test_split_labels_paint_the_spiral_1_and_the_rest_2(helix):
    """Training's split labels (``cochlea_split.split_labels``): the same cut as label values."""
    from InnerEarSegLib.training.cochlea_split import split_labels
    voxels, truth = helix
    ball, canal, labels = spiral_with_vestibule(voxels, truth)
    split = split_labels(labels)
    assert split.GetOrigin() == labels.GetOrigin() and split.GetSpacing() == labels.GetSpacing()
    values = sitk.GetArrayFromImage(split)
    at = lambda pts: values[tuple(np.round([labels.TransformPhysicalPointToContinuousIndex(p.tolist())  # noqa: E731
                                            for p in pts]).astype(int)[:, ::-1].T)]
    assert np.mean(at(voxels) == 1) > 0.9
    assert np.mean(at(ball) == 2) > 0.9 and np.mean(at(canal) == 2) > 0.9
    assert set(np.unique(values)) == {0, 1, 2} and ((values > 0) == (sitk.GetArrayFromImage(labels) > 0)).all()


def test_validation_spiral_truth_recovers_axis_and_turns():
    from conftest import load_script
    script = load_script("planning_validation")
    axis, e1, e2 = frame((-0.2, 0.9, 0.3))
    t = np.linspace(0, 2 * np.pi * 2.6, 400)
    r = 3.5 * (1.0 / 3.5) ** (t / t[-1])
    pts = [1.0, 2.0, 3.0] + r[:, None] * (np.cos(t)[:, None] * e1 + np.sin(t)[:, None] * e2) \
        + (3.0 * (t / t[-1]) ** 0.85)[:, None] * axis
    found_axis, _, turns = script.spiral_truth(pts)
    assert P.angle_deg(found_axis, axis, undirected=False) < 0.5
    assert turns == pytest.approx(2.6, abs=0.01)


def test_turns_refused_where_the_lumen_breaks_off(helix):
    """A turn missing from the label (ossified, say): the trace stops far from the helicotrema,
    so no turn count rather than a short one; A is still given."""
    voxels, truth = helix
    m = P.cochlea_measures(voxels, SPACING, SPACING ** 3)
    x, y, z = P.in_frame(voxels, {"origin": m["axes"]["cochlear_view_origin"], "x": m["axes"]["cochlear_view_x"],
                                  "y": m["axes"]["cochlear_view_y"], "z": m["axes"]["modiolar_axis"]})
    angle = np.degrees(np.arctan2(y, x))
    gap = (np.abs(angle - 90) < 15) & (np.hypot(x, y) > 1.6) & (np.hypot(x, y) < 3.0)   # part of the second turn
    values = P.cochlea_measures(voxels[~gap], SPACING, SPACING ** 3)["values"]
    assert values["A_mm"]["status"] == P.OK
    assert values["turns"]["value"] is None and "short of the helicotrema" in values["turns"]["status"]
    assert "lateral_wall" not in P.cochlea_measures(voxels[~gap], SPACING, SPACING ** 3)["lines"]   # no markup either

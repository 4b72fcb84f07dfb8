"""Assemble the bundled model from a segmenter run and a localiser run, and write its card.

    python release/make_default_model.py --segmenter runs/seg/model.json \
        --localizer runs/loc/model.json [--test-summary runs/testeval/summary.csv] \
        --out Resources/Models/InnerEarSeg.json

The two networks may come from separate (even concurrent) runs; ``--init`` in
``innerear-seg train`` does the same merge when the runs are sequential.
"""
import argparse
import csv
import json
from pathlib import Path

import torch

from InnerEarSegLib.model.network import build_network
from InnerEarSegLib.model.model_card import load_model, network_arch, read_card, save_model

INTENDED_USE = ("Research segmentation of the inner-ear fluid spaces (cochlea, vestibule, semicircular "
                "canals) in heavily T2-weighted MRI and temporal-bone CT. Not for clinical decisions.")
WIMMER = ("Wimmer W, Anschuetz L, Weder S, Wagner F, Delingette H, Caversaccio M. Human bony labyrinth dataset: "
          "co-registered CT and micro-CT images, surface models and anatomical landmarks. Data in Brief 2019; "
          "Zenodo doi:10.5281/zenodo.3355272 (CC BY 4.0)")
LIMITATIONS = [
    "Real scans seen in training: eight temporal-bone CT specimens (whole-labyrinth labels, cut into cochlea "
    "and vestibule+canals by a geometric rule). No real "
    "MRI was trained on; MRI comes from synthesis (procedural and real-shape, random contrasts) and was "
    "checked on one real T2 crop (docs/real_data.md). Expect lower accuracy on scanners, protocols and "
    "anatomy unlike these; review every segmentation.",
    "The real labels split only cochlea from vestibule+canals, by a geometric rule (cochlea DSC 0.87 against "
    "it on the real CT validation ears); the split between vestibule and canals is learned from synthetic "
    "data only (docs/real_data.md).",
    "Synthetic and real anatomy cover normal ears; malformations, implants, motion and post-operative "
    "changes are modelled crudely (labyrinthectomy) or not at all.",
    "Thin canals (0.8-1 mm) need slices of about 1 mm or thinner; they are the weakest structure.",
    "On CT the labyrinth's boundary is calibrated to micro-CT references of eight specimens (a background "
    "weight of 2, chosen on those training ears: release/calibrate_background.py); MRI has no such "
    "calibration (no labelled real MRI). On both, the outline is then moved by up to 0.4 mm to the scan's "
    "own half-way edge (refine_edges): where the lumen touches air or fluid outside the labyrinth (round "
    "and oval windows, an air-filled middle ear) the outline can follow it that far.",
    "After fluid loss (labyrinthectomy, obliteration) the segmenter may still paint a vestibule and "
    "canals next to the surviving cochlea; on CT, soft-tissue obliteration has the density of fluid. "
    "Review such ears by eye.",
    "The segmenter works on a {spacing} mm grid: scans much coarser than that lose the canals.",
]


def network_from_run(card_path, name):
    """A run's network and card, from its model card or from a training checkpoint (PATH.ckpt.pt:
    the run's last epoch, not its best; its card is the one the run started from)."""
    if str(card_path).endswith(".ckpt.pt"):
        ckpt = torch.load(card_path, map_location="cpu", weights_only=False)
        net = build_network(ckpt["networks"][name]["arch"])
        net.load_state_dict(ckpt["networks"][name]["state"])
        return net, ckpt["card"]
    card = read_card(card_path)
    state = torch.load(Path(card_path).parent / card["weights"], map_location="cpu", weights_only=True)
    net = build_network(card["networks"][name])
    net.load_state_dict(state[name])
    return net, card


def average_networks(nets):
    """One network whose weights are the mean of ``nets``' (same architecture).

    Why: snapshots of one fine-tuning lineage sit in one basin of the loss; their mean is a
    cheap ensemble with a single network's cost at inference (stochastic weight averaging,
    Izmailov et al. 2018). Instance norm keeps no running statistics, so nothing to recompute.
    """
    archs = [network_arch(net, net.head.out_channels) for net in nets]
    arch = archs[0]
    for other in archs[1:]:
        if other != arch:
            raise ValueError(f"cannot average networks of different architectures: {arch} vs {other}")
    states = [net.state_dict() for net in nets]
    mean = build_network(arch)
    mean.load_state_dict({k: sum(s[k].float() for s in states) / len(states) for k in states[0]})
    return mean


RUN_FACTS = ("steps", "seconds", "loss", "lr", "lr_schedule", "hardware", "amp", "seed", "init",
             "generator_version", "soft_labels", "contrast_weights", "validation", "averaged")


def load_run(path) -> dict:
    """A run's model card (PATH.json) or training checkpoint (PATH.ckpt.pt), as stored."""
    if str(path).endswith(".ckpt.pt"):
        return torch.load(path, map_location="cpu", weights_only=False)
    return json.loads(Path(path).read_text())


def run_entry(path, stage, run=None):
    """One run's facts for ``training_runs``: a model card's training record, or a checkpoint's
    state (the run's last epoch; ``checkpoint``: true). None when the card has no such record.
    Facts a run did not record (older runs, averages) are left out rather than written as null.
    ``run``: the file's contents when the caller has loaded them (``load_run``)."""
    run = load_run(path) if run is None else run
    if str(path).endswith(".ckpt.pt"):
        facts = {**run["config"], "steps": run["state"]["step"], "seconds": round(run["state"]["seconds"], 1)}
        head = {"stage": stage, "run": str(path), "checkpoint": True}
    else:
        facts = run.get("training", {}).get(stage)
        if not facts:
            return None
        head = {"stage": stage, "run": str(path)}
    return {**head, **{k: facts[k] for k in RUN_FACTS if facts.get(k) is not None}}


def init_chain(card_path, stage):
    """The training runs behind a model: follow each run's ``--init`` back to the first; at a
    weight average (its training record names the ``averaged`` runs) list every member and go
    on behind the first. At an assembled model (a bundled card: it lists its own
    ``training_runs``) take that list and stop: its run folders need not exist any more, and a
    run tuned from the bundled model must not lose the chain behind it."""
    runs, path = [], Path(card_path)
    while path is not None and path.is_file():
        run = load_run(path)   # once: its training record and, for a bundled card, its history
        entry = run_entry(path, stage, run)
        if not entry:
            break
        averaged = entry.get("averaged")
        bundled = run.get("training_runs")
        if bundled is not None:
            runs[:0] = [r for r in bundled if r["stage"] == stage] + ([entry] if averaged else [])
            break
        members = [m for m in (run_entry(a, stage) for a in averaged[1:]) if m] if averaged else []
        runs[:0] = members + [entry]
        path = Path(averaged[0]) if averaged else Path(entry["init"]) if entry.get("init") else None
    return runs


def training_data(card, versions) -> str:
    """What the segmenter saw: synthetic generator versions, and the real data of its last run."""
    synthetic = (f"Synthetic samples generated on the fly by InnerEarSegLib.synth (generator version "
                 f"{', then '.join(versions) or '?'}; per run in training_runs; seeds in "
                 "training.*.synthetic_seeds)")
    record = card.get("training", {}).get("segmenter", {})
    if not record.get("data"):
        return synthetic + ". No real scan was used."
    return (f"{synthetic}; and {record.get('cases', '?')} real temporal-bone CT ears ({', '.join(record['data'])}; "
            f"labels: {record.get('label_kind', 'structures')}, trained with the marginal loss; also the shapes of "
            f"{record.get('shape_fraction', 0):.0%} of the samples, rendered with random contrasts), the training "
            f"split of release/real_ct.py, from {WIMMER}. Validation ears never trained on: "
            f"{', '.join(record.get('val_data', []))} ({record.get('val_cases', '?')} ears).")


def real_metrics(path) -> dict:
    """Mean labyrinth DSC per variant of the real CT validation table (``release/real_eval.py --csv``)."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    means = {v: round(sum(float(r["dsc"]) for r in rows if r["variant"] == v)
                      / sum(1 for r in rows if r["variant"] == v), 3) for v in variants}
    return {"set": "real temporal-bone CT validation ears " + ", ".join(dict.fromkeys(r["case"] for r in rows))
                   + " (Wimmer et al. 2019; never trained on)",
            "command": "python release/real_eval.py", "labyrinth_dsc": means}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segmenter", required=True, nargs="+",
                    help="segmenter run(s): model cards or training checkpoints (PATH.ckpt.pt, the last "
                         "epoch); several: their weights are averaged (average_networks), the first "
                         "one's card and training history are kept")
    ap.add_argument("--localizer", required=True)
    ap.add_argument("--test-summary", help="summary.csv of innerear-seg evaluate on the synthetic test set")
    ap.add_argument("--test-command", default="bash release/evaluate_default_model.sh")
    ap.add_argument("--out", default="Resources/Models/InnerEarSeg.json")
    ap.add_argument("--class-weights", type=float, nargs=4, metavar=("BG", "COCHLEA", "VESTIBULE", "CANALS"),
                    help="postprocessing.class_weights: segmenter probabilities times these before the argmax "
                         "(postprocess.reweight; choose on the validation set)")
    ap.add_argument("--ct-class-weights", type=float, nargs=4, metavar=("BG", "COCHLEA", "VESTIBULE", "CANALS"),
                    help="postprocessing.class_weights_by_modality.ct: the class weights for CT scans "
                         "(choose on the real CT training ears: release/calibrate_background.py)")
    ap.add_argument("--window", type=int, nargs=3, metavar=("Z", "Y", "X"),
                    help="inference window (card preprocessing.patch_size; default: the segmenter's training patch)")
    ap.add_argument("--region-mm", type=float,
                    help="ear region edge in mm (default: one window); a larger region is covered by overlapping windows")
    ap.add_argument("--real-table", help="CSV of release/real_eval.py --csv on the real CT validation ears")
    args = ap.parse_args(argv)
    if args.segmenter[0].endswith(".ckpt.pt"):
        ap.error("the first --segmenter must be a model card: its card and training history are kept")
    runs = [network_from_run(path, "segmenter") for path in args.segmenter]
    seg, seg_card = runs[0]
    if len(runs) > 1:
        seg = average_networks([net for net, _ in runs])
    loc, loc_card = network_from_run(args.localizer, "localizer")
    card = dict(seg_card, name=Path(args.out).name.removesuffix(".json"))
    # Inference sees exactly the training patch: one window per ear region. With instance norm the
    # network depends on the window size it was trained on: on 80^3 windows (36 mm regions) the
    # 64^3-trained segmenter painted every structure 12-18 % too large (docs/history.md, "Inference window =
    # training patch").
    patch = [int(p) for p in (args.window or seg_card["preprocessing"]["patch_size"])]
    region_mm = [round(n * float(seg_card["preprocessing"]["spacing_mm"]), 4) for n in patch[::-1]]
    if args.region_mm:
        region_mm = [float(args.region_mm)] * 3
    card["preprocessing"] = dict(seg_card["preprocessing"], patch_size=patch, ear_region_mm=region_mm,
                                 localizer_patch_size=[48, 80, 80])
    # each network's own record: a bundled card passed as --localizer also holds an older segmenter's
    card["training"] = dict(seg_card.get("training", {}))
    if "localizer" in loc_card.get("training", {}):
        card["training"]["localizer"] = loc_card["training"]["localizer"]
    seg_runs = {}   # every averaged run's chain, shared ancestors once
    for path in args.segmenter:
        seg_runs.update({r["run"]: r for r in init_chain(path, "segmenter") if r["run"] not in seg_runs})
    card["training_runs"] = list(seg_runs.values()) + init_chain(args.localizer, "localizer")
    card.pop("segmenter_weights", None)   # a copy of the average's record in runs made before 0.1.0's cards
    if len(runs) > 1:   # the average's training record: what init_chain follows
        card["training"]["segmenter"] = {"averaged": list(args.segmenter), "steps": 0, "seconds": 0}
    spacing = f"{card['preprocessing']['spacing_mm']:g}"
    card["description"] = ("Attention 3D U-Net with input image pyramid (after Vaidyanathan et al., Sci Rep 2021), "
                           f"two stages: a 2 mm localiser finds each labyrinth, a {spacing} mm segmenter labels it.")
    card["intended_use"] = INTENDED_USE
    versions = sorted({str(r.get("generator_version")) for r in card["training_runs"] if r.get("generator_version")})
    card["training_data"] = training_data(card, versions)
    card["postprocessing"] = {}
    if args.class_weights:
        card["postprocessing"]["class_weights"] = args.class_weights
    if args.ct_class_weights:
        card["postprocessing"]["class_weights_by_modality"] = {"ct": args.ct_class_weights}
    card["limitations"] = [text.format(spacing=spacing) for text in LIMITATIONS]
    card["reproduce"] = "bash release/train_default_model.sh"
    card["codes"] = {"inner_ear": ["SCT", "22945000", "Inner ear"], "left": ["SCT", "7771000", "Left"],
                     "right": ["SCT", "24028007", "Right"]}
    if args.test_summary:
        with open(args.test_summary) as f:
            card["test_metrics"] = {"set": "synthetic held-out test set (innerear-seg synth -n 24 --seed 900000)",
                                    "command": args.test_command, "summary": list(csv.DictReader(f))}
    if args.real_table:
        card["real_metrics"] = real_metrics(args.real_table)
    out = save_model(args.out, {"segmenter": seg, "localizer": loc}, card)
    load_model(out)   # verify what was written
    print(f"wrote {out} and {out.with_suffix('.pt')}")


if __name__ == "__main__":
    main()

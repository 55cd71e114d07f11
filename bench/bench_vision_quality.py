"""Verification accuracy on ../shared/faces/dev: every genuine and impostor pair.

Prints ROC points, TAR at FAR 0.1 % and at the default threshold, FAR at the
default threshold.  With 91 impostor pairs, FAR 0.1 % means "no impostor pair
accepted": the threshold is below the closest impostor distance.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import cv2
import numpy as np

from vision.config import DEFAULT_THRESHOLD
from vision.pipeline import FaceAnalyzer

DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "faces" / "dev"


def main() -> int:
    if not DEV.is_dir():
        print(f"skipped: {DEV} not found")
        return 0
    analyzer = FaceAnalyzer(mesh=False)
    people: list[str] = []
    vectors: list[np.ndarray] = []
    for path in sorted(DEV.glob("*/*")):
        result = analyzer.analyze(np.asarray(cv2.imread(str(path)), np.uint8))
        if not result.faces or result.faces[0].embedding is None:
            print(f"no face: {path}")
            continue
        people.append(path.parent.name)
        vectors.append(result.faces[0].embedding.vector)
    genuine, impostor = [], []
    for (a, va), (b, vb) in itertools.combinations(zip(people, vectors, strict=True), 2):
        (genuine if a == b else impostor).append(float(np.linalg.norm(va - vb)))
    g, i = np.array(genuine), np.array(impostor)
    print(f"pairs: {len(g)} genuine, {len(i)} impostor")
    print(f"genuine distance  min {g.min():.3f}  median {np.median(g):.3f}  max {g.max():.3f}")
    print(f"impostor distance min {i.min():.3f}  median {np.median(i):.3f}  max {i.max():.3f}")
    print("ROC (threshold: TAR / FAR):")
    for t in np.arange(0.35, 0.80, 0.05):
        print(f"  {t:.2f}: TAR {np.mean(g <= t):6.1%}  FAR {np.mean(i <= t):6.1%}")
    # Largest threshold with FAR <= 0.1 %: just under the closest impostor.
    t_far = float(np.nextafter(i.min(), 0))
    print(f"TAR at FAR<=0.1%: {np.mean(g <= t_far):.1%} (threshold {t_far:.3f})")
    t = DEFAULT_THRESHOLD
    print(f"default threshold {t}: TAR {np.mean(g <= t):.1%}  FAR {np.mean(i <= t):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Face models behind one interface, so a better one (an ONNX model a user provides, say) can replace dlib.

`DlibFaceModel` uses dlib's HOG frontal face detector, its 68-point shape predictor and its ResNet face embedding
(128 numbers; faces of one person are within ~0.6 of each other), with the weights that ship inside the
`face-recognition-models` PyPI package: nothing is downloaded at run time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Box:
    top: int
    right: int
    bottom: int
    left: int

    def scaled(self, factor: float, width: int, height: int) -> Box:
        """The box in the pixels of the image `factor` times larger, clipped to it."""
        def clip(v, hi):
            return int(min(max(round(v * factor), 0), hi))

        return Box(clip(self.top, height), clip(self.right, width), clip(self.bottom, height), clip(self.left, width))

    def as_dict(self) -> dict:
        return {"top": self.top, "right": self.right, "bottom": self.bottom, "left": self.left}


@dataclass(frozen=True)
class DetectedFace:
    box: Box          # pixels of the image given to detect()
    score: float      # detector confidence (higher is surer); comparable within one model only
    embedding: np.ndarray  # 1-D float vector; distance = Euclidean


class FaceModel(Protocol):
    name: str
    dimensions: int

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in an H×W×3 uint8 RGB image, most confident first."""


class DlibFaceModel:
    name = "dlib-hog-resnet-v1"
    dimensions = 128

    def __init__(self, min_score: float = 0.5, upsample: int = 1, jitter: int = 1):
        import dlib
        import face_recognition_models as weights

        self.min_score, self.upsample, self.jitter = min_score, upsample, jitter
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(weights.pose_predictor_model_location())
        self._encoder = dlib.face_recognition_model_v1(weights.face_recognition_model_location())
        self._lock = threading.Lock()  # dlib objects are not documented as thread-safe

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError("detect() takes an H×W×3 uint8 RGB array")
        rgb = np.ascontiguousarray(rgb)
        found = []
        with self._lock:
            rects, scores, _ = self._detector.run(rgb, self.upsample, 0.0)
            for rect, score in zip(rects, scores, strict=True):
                if score < self.min_score:
                    continue
                shape = self._shape(rgb, rect)
                vector = np.asarray(self._encoder.compute_face_descriptor(rgb, shape, self.jitter), dtype=np.float64)
                height, width = rgb.shape[:2]
                box = Box(max(rect.top(), 0), min(rect.right(), width), min(rect.bottom(), height), max(rect.left(), 0))
                found.append(DetectedFace(box=box, score=float(score), embedding=vector))
        return sorted(found, key=lambda f: -f.score)


BACKENDS = {"dlib": DlibFaceModel}
_models: dict[str, FaceModel] = {}
_models_lock = threading.Lock()


def load_model(name: str = "dlib") -> FaceModel:
    """One model per process (loading the weights takes a while), chosen by name."""
    with _models_lock:
        if name not in _models:
            if name not in BACKENDS:
                raise ValueError(f"unknown face model {name!r}; known: {', '.join(BACKENDS)}")
            _models[name] = BACKENDS[name]()
        return _models[name]

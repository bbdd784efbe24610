"""KubeArts predictor image: a KServe model server for image classifiers."""

__version__ = "0.1.0"

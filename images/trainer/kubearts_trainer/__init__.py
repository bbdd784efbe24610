"""KubeArts trainer: image-classification training and export behind the TrainingJob resource."""

__version__ = "0.1.0"

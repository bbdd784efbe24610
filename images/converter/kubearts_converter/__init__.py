"""KubeArts converter image: TensorFlow models to ONNX (tf2onnx, verified) or Ascend om (ATC),
and model registration with a content digest and a signature."""

__version__ = "0.1.0"

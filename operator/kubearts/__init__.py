"""KubeArts: a Kubernetes operator for the ModelArts workflow — data sets, algorithm
subscriptions, training, model conversion, models and inference services — on CPU, GPU
and Ascend nodes. The operator's entry point is :mod:`kubearts.main`."""

__version__ = "0.1.0"

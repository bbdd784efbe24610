"""KubeArts converter image."""

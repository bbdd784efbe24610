"""KubeArts predictor image."""

"""Pure builders: arguments in, Kubernetes manifest fragments (plain dicts) out.

Nothing here talks to the API server or reads the environment, so every builder is tested
directly in ``tests/unit``. Handlers combine builder output and hand it to ``kubearts.k8s``.
"""

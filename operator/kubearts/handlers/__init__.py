"""kopf handlers, one module per resource; ``kubearts.main`` imports them to register them.

Handlers are thin: they read the object, call pure builders and ``kubearts.k8s``, and write
status through ``handlers.common``.
"""

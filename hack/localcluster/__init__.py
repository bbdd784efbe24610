"""A real Kubernetes control plane on this machine, with CPU, GPU and Ascend nodes.

etcd (Debian's etcd-server) and kube-apiserver, kube-controller-manager and kube-scheduler
(built from Debian's kubernetes 1.20.2 source with Go 1.15) run as local processes; a node
agent registers four nodes and plays the kubelet for them, running each pod's containers as
local processes in their own network and mount namespaces. Used by the tests and the demo.

    python -m localcluster up|down|status|env      (with hack/ on sys.path)
"""

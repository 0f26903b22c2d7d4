#!/usr/bin/env bash
# End to end on a real (throwaway) cluster: needs docker, kind, kubectl and helm.
# Creates a kind cluster, installs the Secrets Store CSI Driver with the settings
# csiprovider relies on, builds and loads the image, installs csiprovider, mounts the
# file example in a pod and checks the files and the synced Secret. CI here has no Docker:
# run it on a workstation.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLUSTER=${CLUSTER:-csiprovider-e2e}
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done

kind create cluster --name "$CLUSTER" --wait 120s
trap '[ -n "${KEEP:-}" ] || kind delete cluster --name "$CLUSTER"' EXIT

helm repo add secrets-store-csi-driver \
  https://kubernetes-sigs.github.io/secrets-store-csi-driver/charts >/dev/null
helm install csi-secrets-store secrets-store-csi-driver/secrets-store-csi-driver \
  --namespace kube-system -f daemonset/driver/values.yaml --wait

docker build -t csiprovider:kind .
kind load docker-image csiprovider:kind --name "$CLUSTER"
kubectl apply -k e2e/kind
kubectl -n csiprovider rollout status daemonset/csiprovider --timeout=120s

kubectl apply -f daemonset/examples/file.yaml
kubectl wait --for=condition=Ready pod/app-files --timeout=120s
test "$(kubectl exec app-files -- cat /mnt/secrets/db-username)" = kind-user
test "$(kubectl exec app-files -- cat /mnt/secrets/db-password)" = kind-password
test "$(kubectl exec app-files -- stat -L -c %a /mnt/secrets/db-password)" = 600
test "$(kubectl get secret app-db -o jsonpath='{.data.username}' | base64 -d)" = kind-user
kubectl -n csiprovider exec daemonset/csiprovider -- python -c \
  "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/readyz').read().decode())"
echo "kind e2e: OK"

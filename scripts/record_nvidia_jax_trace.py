"""Record a real JAX training-step trace on an NVIDIA GPU (cuDNN convolutions, cuBLAS GEMMs).

    python scripts/record_nvidia_jax_trace.py OUT_DIR [--steps 5] [--batch 8]

Runs on a machine with a CUDA GPU and JAX (no TensorFlow, no Keras needed): a small CNN written
in plain JAX (conv 3x3 3->16 stride 1, ReLU; conv 3x3 16->32 stride 2, ReLU; dense 8192->256,
ReLU; dense 256->10; softmax cross-entropy; SGD), one jitted training step, warmed up, then
`--steps` steps under `jax.profiler` with `StepTraceAnnotation` step markers. Writes the logdir
(`OUT_DIR/logdir/plugins/profile/<run>/*.xplane.pb`) and `OUT_DIR/provenance.json` (JAX version,
device, model configuration). The layer configuration is what tests count the FLOPs from
(tests/test_nvidia_jax_trace.py); nothing here reads our own output.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

# The model, as the tests read it back from provenance.json: (name, kind, config).
LAYERS = [
    ("conv1", "conv", {"kernel": [3, 3], "in": 3, "out": 16, "stride": 1, "padding": "SAME"}),
    ("conv2", "conv", {"kernel": [3, 3], "in": 16, "out": 32, "stride": 2, "padding": "SAME"}),
    ("dense1", "dense", {"in": 8192, "out": 256}),
    ("dense2", "dense", {"in": 256, "out": 10}),
]
IMAGE = [32, 32, 3]  # H, W, C (NHWC)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp
    from jax import lax

    device = jax.devices()[0]
    if device.platform != "gpu":
        raise SystemExit(f"no GPU here: JAX runs on {device}")
    key = jax.random.PRNGKey(0)
    params = {}
    for name, kind, cfg in LAYERS:
        key, sub = jax.random.split(key)
        shape = (*cfg["kernel"], cfg["in"], cfg["out"]) if kind == "conv" else (cfg["in"], cfg["out"])
        params[name] = {"w": jax.random.normal(sub, shape, jnp.float32) * 0.05,
                        "b": jnp.zeros((cfg["out"],), jnp.float32)}

    def forward(p, x):
        for name, kind, cfg in LAYERS:
            if kind == "conv":
                x = lax.conv_general_dilated(x, p[name]["w"], (cfg["stride"],) * 2, cfg["padding"],
                                             dimension_numbers=("NHWC", "HWIO", "NHWC")) + p[name]["b"]
                x = jax.nn.relu(x)
            else:
                x = x.reshape(x.shape[0], -1) @ p[name]["w"] + p[name]["b"]
                if name != LAYERS[-1][0]:
                    x = jax.nn.relu(x)
        return x

    def loss_fn(p, x, y):
        logits = forward(p, x)
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * jax.nn.one_hot(y, 10), axis=-1))

    @jax.jit
    def train_step(p, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        return jax.tree.map(lambda w, g: w - 0.01 * g, p, grads), loss

    key, kx, ky = jax.random.split(key, 3)
    x = jax.random.normal(kx, (args.batch, *IMAGE), jnp.float32)
    y = jax.random.randint(ky, (args.batch,), 0, 10)
    for _ in range(3):
        params, loss = train_step(params, x, y)
        loss.block_until_ready()
    logdir = args.out / "logdir"
    jax.profiler.start_trace(str(logdir))
    for step in range(args.steps):
        with jax.profiler.StepTraceAnnotation("train", step_num=step):
            params, loss = train_step(params, x, y)
            loss.block_until_ready()
    jax.profiler.stop_trace()

    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        gpu = ""
    provenance = {"recorded_with": "scripts/record_nvidia_jax_trace.py", "jax": jax.__version__,
                  "jaxlib": getattr(__import__("jaxlib"), "__version__", ""), "device": str(device),
                  "device_kind": device.device_kind, "nvidia_smi": gpu, "python": platform.python_version(),
                  "batch": args.batch, "steps": args.steps, "image_nhwc": [args.batch, *IMAGE],
                  "layers": [{"name": n, "kind": k, **c} for n, k, c in LAYERS], "final_loss": float(loss),
                  "trace_files": [str(p.relative_to(args.out)) for p in sorted(logdir.rglob("*.xplane.pb"))]}
    (args.out / "provenance.json").write_text(json.dumps(provenance, indent=2))
    print(json.dumps(provenance, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

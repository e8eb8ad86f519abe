"""``facesearch deploy``: checks that a container runs before its main process.

The compose file's GPU worker starts as ``facesearch deploy check-gpu -- facesearch worker
--role ingest``: without the check, TensorFlow finding no GPU (no NVIDIA runtime, a wrong
``device_ids``, a CPU build) quietly falls back to the CPU and the "GPU" worker ingests at a
tenth of its speed with nothing in its logs to say so. With it, the container exits at once
with a message that says what to fix.
"""

from __future__ import annotations

import os

import click

# Shared by every refusal, so that a log search (or a test) finds any of them.
NO_GPU = "no GPU for TensorFlow"
CPU_FALLBACK = (
    "Without a GPU, run the CPU ingest worker instead: "
    "docker compose --profile cpu up -d --scale worker-gpu0=0"
)


def gpu_problem() -> tuple[str | None, list[str]]:
    """Why TensorFlow in this process cannot compute on a GPU (None when it can), and the
    GPUs it sees. Asks TensorFlow itself, not nvidia-smi: what counts is what the worker's
    own TensorFlow build finds through the driver the container was given."""
    try:
        import tensorflow as tf  # noqa: PLC0415 (heavy, and absent from the API image)
    except ImportError:
        return (
            f"{NO_GPU}: this image has no TensorFlow (built with TF_VARIANT=none); "
            "the GPU worker's image is built with TF_VARIANT=gpu",
            [],
        )
    if not tf.test.is_built_with_cuda():
        return (
            f"{NO_GPU}: this image's TensorFlow is built without CUDA (tensorflow-cpu, "
            f"TF_VARIANT=cpu): build the GPU worker with TF_VARIANT=gpu. {CPU_FALLBACK}",
            [],
        )
    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    if not gpus:
        visible = ", ".join(
            f"{name}={os.environ[name]!r}"
            for name in ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
            if name in os.environ
        )
        return (
            f"{NO_GPU}: TensorFlow (built with CUDA) sees no GPU in this container"
            f"{f' ({visible})' if visible else ''}. The host needs the NVIDIA driver and the "
            "NVIDIA Container Toolkit, and the service a device reservation whose device_ids "
            f"name a GPU the host has (nvidia-smi -L lists them). {CPU_FALLBACK}",
            [],
        )
    return None, gpus


@click.group()
def deploy() -> None:
    """Checks that the compose services run before their main process."""


@deploy.command(
    "check-gpu",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def check_gpu(command: tuple[str, ...]) -> None:
    """Exit non-zero, saying why, unless TensorFlow sees a GPU; then run COMMAND (given
    after `--`) in this process's place, so that it receives the container's signals."""
    problem, gpus = gpu_problem()
    if problem:
        raise click.ClickException(problem)
    click.echo(f"GPUs visible to TensorFlow: {', '.join(gpus)}", err=True)
    if command:
        os.execvp(command[0], list(command))  # noqa: S606 (replaces this process by design)

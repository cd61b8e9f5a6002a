"""Trained models as files that run without mnist-pl: ONNX (for onnxruntime and others) and TorchScript.

Each model says what it exports (`exportable`): a classifier takes raw uint8 images [N, 28, 28]
and returns the ten probabilities, with the training normalisation built in; a GAN's EMA
generator takes noise (and the digit) and returns images in [0, 1]. The batch size is free. The
file's metadata says what its inputs and output hold.

    export_checkpoint("runs/cnn/version_0/checkpoints/last.ckpt", "cnn.onnx")
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from .errors import UserError
from .exportable import Exportable

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
ONNX_OPSET = 18


def exportable_of(checkpoint: str | Path) -> Exportable:
    """What the model in a checkpoint of `train.py` (dense, cnn or gan) exports, with its metadata."""
    from .checkpoints import datamodule_for, load_model

    model, saved = load_model(checkpoint, purpose="export")
    export = getattr(type(model), "exportable", None)
    if not callable(export):
        raise UserError(f"checkpoint {checkpoint} holds a {type(model).__name__}, which says nothing of what to "
                        "export: give its class an exportable(normalization, classes) method, as ImageClassifier "
                        "and GAN have (see mnist_pl/exportable.py).")
    datamodule = datamodule_for(saved)
    exportable: Exportable = export(model, datamodule.normalization, datamodule.classes)
    exportable.metadata = {"producer": "mnist-pl", "checkpoint": Path(checkpoint).name,
                           "model": type(model).__name__, **exportable.metadata}
    return exportable


def write_onnx(exportable: Exportable, out: str | Path) -> Path:
    """Write `exportable` as one ONNX file whose inputs have a free batch axis; metadata included."""
    import onnx

    out = Path(out)
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        torch.onnx.export(exportable.module, tuple(exportable.inputs.values()), out, dynamo=True,
                          input_names=list(exportable.inputs), output_names=[exportable.output],
                          dynamic_shapes=tuple({0: batch} for _ in exportable.inputs),
                          opset_version=ONNX_OPSET, external_data=False, verbose=False)
    model = onnx.load(out)
    onnx.helper.set_model_props(model, exportable.metadata)
    onnx.save(model, out)
    return out


def write_torchscript(exportable: Exportable, out: str | Path) -> Path:
    """Write `exportable` as a traced TorchScript file, the metadata as its extra file metadata.json."""
    out = Path(out)
    with warnings.catch_warnings():
        # PyTorch marks TorchScript deprecated in favour of torch.export; the files still load
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(exportable.module, tuple(exportable.inputs.values()))
        torch.jit.save(traced, str(out), _extra_files={"metadata.json": json.dumps(exportable.metadata)})
    return out


def export_checkpoint(checkpoint: str | Path, out: str | Path, fmt: str | None = None) -> Exportable:
    """Export the model of `checkpoint` to `out` as `fmt` ("onnx" or "torchscript"; by default
    from the suffix: .onnx or .pt). Returns what was exported."""
    out = Path(out)
    fmt = fmt or next((name for name, suffix in FORMATS.items() if out.suffix.lower() == suffix), None)
    if fmt not in FORMATS:
        raise UserError(f"--out {out}: say which format with --format onnx or --format torchscript "
                        "(or name the file .onnx or .pt).")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / ('model' + FORMATS[fmt])}.")
    exportable = exportable_of(checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:  # a failed export leaves an earlier file of that name untouched
        (write_onnx if fmt == "onnx" else write_torchscript)(exportable, partial)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return exportable

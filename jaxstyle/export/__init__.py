"""Export a trained jaxstyle model to ONNX, Core ML (ML Program) and TF SavedModel.

  python -m jaxstyle.export --workdir runs/mosaic --formats coreml,onnx,savedmodel --out export/

See docs/export.md. `export()` is the library entry point.
"""

from jaxstyle.export.errors import ExportError
from jaxstyle.export.exporter import FORMATS, export

__all__ = ["ExportError", "FORMATS", "export"]

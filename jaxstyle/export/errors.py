"""The one error type export raises for anything a user can act on."""


class ExportError(RuntimeError):
  """An artifact could not be built or did not verify; the message names the
  format, the op or the size, and nothing was left where the artifact goes."""

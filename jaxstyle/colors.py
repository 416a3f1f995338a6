"""Colour preservation: the stylized picture's luminance on the photo's colours.

Luminance-only transfer (Gatys et al. 2016, "Preserving color in neural
artistic style transfer"): in YIQ the photo keeps its chroma (I, Q) and takes
Y from the stylized image. Because YIQ → RGB adds Y equally to R, G and B,
that is the photo plus the luminance difference on every channel, then
clipped to [0, 1] (the only step that can change the chroma). Plain array
arithmetic: works on numpy and jax arrays alike, so the same function runs
in the stylizers and inside exported graphs.
"""

# ITU-R BT.601 luma, the Y of YIQ / YUV.
LUMA = (0.299, 0.587, 0.114)


def luminance(rgb):
  """(..., 3) RGB → (..., 1) Y."""
  return rgb[..., 0:1] * LUMA[0] + rgb[..., 1:2] * LUMA[1] + rgb[..., 2:3] * LUMA[2]


def preserve_colors(stylized, content):
  """The content's chroma with the stylized luminance, in [0, 1]."""
  return (content + (luminance(stylized) - luminance(content))).clip(0.0, 1.0)

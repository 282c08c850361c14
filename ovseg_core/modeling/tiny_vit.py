"""MobileSAM's TinyViT image encoder at any input size (a multiple of 16).

mobile_sam's `TinyViT.forward_features` reshapes its tokens to a fixed 64 x 64 grid, so it runs
at 1024 px only. `SizedTinyViT` reshapes to the grid its input gives. Its parameters are those
of the 1024 px model (attention biases depend on the window size, not the image size), so
`mobile_sam.pt` loads strictly at every size.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

with warnings.catch_warnings():  # mobile_sam re-registers timm's tiny_vit names
    warnings.simplefilter("ignore")
    from mobile_sam.modeling.tiny_vit_sam import TinyViT


class SizedTinyViT(TinyViT):
    """TinyViT-5M as MobileSAM builds it, for (B, 3, S, S) inputs -> (B, 256, S/16, S/16)."""

    def __init__(self, image_size: int) -> None:
        # built on the CPU whatever the default device: TinyViT reads values while building
        # (`.item()` of its drop-path schedule), which meta tensors cannot give
        with torch.device("cpu"):
            self._build(image_size)

    def _build(self, image_size: int) -> None:
        super().__init__(img_size=image_size, in_chans=3, num_classes=1000,
                         embed_dims=[64, 128, 160, 320], depths=[2, 2, 6, 2],
                         num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7], mlp_ratio=4.0,
                         drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False,
                         mbconv_expand_ratio=4.0, local_conv_size=3, layer_lr_decay=0.8)

    def forward_features(self, x: Tensor) -> Tensor:
        side = x.shape[-1] // 16
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        x = x.view(x.shape[0], side, side, x.shape[-1]).permute(0, 3, 1, 2)
        return self.neck(x)

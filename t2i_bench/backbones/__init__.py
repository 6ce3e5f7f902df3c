"""Backbones: one module per model family; importing this package registers them all."""

from t2i_bench.backbones import (
    aesthetic,  # noqa: F401  (the laion_aesthetic_v2 head)
    clip,  # noqa: F401  (registers clip_vit_b32, clip_vit_l14, clip_vit_l14_openai)
    cmmd_clip,  # noqa: F401  (clip_vit_l14_336)
    demo_clip,  # noqa: F401  (clip_demo: the demo's pretrained tiny CLIP)
    dino,  # noqa: F401  (dinov2_vitl14, dino_vits16)
    dreamsim,  # noqa: F401  (dreamsim)
    hpsv2,  # noqa: F401  (hpsv2)
    image_reward,  # noqa: F401  (image_reward)
    inception,  # noqa: F401  (inception_v3_fid)
    lpips_net,  # noqa: F401  (lpips_alex)
    pickscore,  # noqa: F401  (pickscore)
    vgg,  # noqa: F401  (vgg19_gram)
)

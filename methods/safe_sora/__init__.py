"""Safe-Sora (arXiv 2505.12667): a logo watermark hidden in generated video by a small adapter on
the decoded frames, with patch position codes, coarse-to-fine patch placement, an UNet embedder
and an extractor built from spatial-frequency Mamba blocks (``sfmamba``) over Haar wavelet
subbands (``wavelet``) in dedicated token orders (``scan``), on a pure-PyTorch selective scan that
defers to mamba-ssm's fused kernel on CUDA when it is installed (``mamba``).
"""

"""Tests for lecture_lib.models.fcn and .unet: shapes, odd sizes, bilinear init, training."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lecture_lib.data.shapes import NUM_CLASSES, ShapesDataset
from lecture_lib.models import fcn, unet
from lecture_lib.models.fcn import FCN, FCNConfig, bilinear_kernel
from lecture_lib.models.unet import UNet, UNetConfig
from lecture_lib.train import fit
from lecture_lib.upsampling import conv_transpose2d

SMALL_FCN = dict(widths=(4, 4, 8, 8, 8))


@pytest.mark.parametrize("make", [
    lambda: UNet(num_classes=5, base_channels=4, depth=3),
    lambda: UNet(UNetConfig(num_classes=5, base_channels=4, depth=1, batch_norm=False)),
    lambda: UNet(num_classes=5, base_channels=4, depth=2, stem_stride=2),
    lambda: UNet(UNetConfig(num_classes=5, base_channels=4, depth=1, batch_norm=False, stem_stride=2)),
    lambda: FCN(num_classes=5, variant="8s", **SMALL_FCN),
    lambda: FCN(num_classes=5, variant="16s", **SMALL_FCN),
    lambda: FCN(FCNConfig(num_classes=5, variant="32s", **SMALL_FCN)),
])
@pytest.mark.parametrize("size", [(37, 53), (5, 3), (1, 1)])
def test_output_shape_equals_input_size(make, size):
    model = make().eval()
    out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 5, *size)
    assert torch.isfinite(out).all()


def test_empty_batch():
    assert UNet(num_classes=3, base_channels=4).eval()(torch.zeros(0, 3, 16, 16)).shape == (0, 3, 16, 16)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bilinear_kernel_is_bilinear_interpolation(factor):
    # Long et al. 2015 initialise upsampling to bilinear interpolation: away from the border
    # (where interpolate clamps and the transpose conv sees zeros) the two agree.
    x = torch.randn(1, 3, 6, 7)
    up = conv_transpose2d(x, bilinear_kernel(3, factor), stride=factor, padding=factor // 2)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert up.shape == ref.shape
    torch.testing.assert_close(up[..., factor:-factor, factor:-factor], ref[..., factor:-factor, factor:-factor])


def test_bilinear_kernel_does_not_mix_channels():
    w = bilinear_kernel(3, 2)
    assert w[0, 1].abs().sum() == 0 and w[1, 1].sum() == pytest.approx(4.0)  # factor^2: mass preserved


def test_fcn_32s_is_coarse_and_8s_is_not():
    torch.manual_seed(0)
    m32 = FCN(num_classes=3, variant="32s", **SMALL_FCN).eval()
    m8 = FCN(num_classes=3, variant="8s", **SMALL_FCN).eval()
    assert len(m32.score_skips) == 0 and len(m8.score_skips) == 2
    x = torch.randn(1, 3, 32, 32)
    # On a 32x32 input FCN-32s has a single score per class, upsampled by the (bilinear)
    # transpose conv: each output channel is score * outer(hat, hat), a rank-1 matrix.
    # The skip connections of FCN-8s bring in 4x4 detail from the stride-8 map.
    with torch.no_grad():
        assert torch.linalg.matrix_rank(m32(x)[0, 0].double(), rtol=1e-4) == 1
        assert torch.linalg.matrix_rank(m8(x)[0, 0].double(), rtol=1e-4) > 1


@pytest.mark.parametrize("make", [
    lambda: UNet(num_classes=NUM_CLASSES, base_channels=8, depth=2),
    lambda: FCN(num_classes=NUM_CLASSES, variant="8s", widths=(8, 8, 16, 16, 16)),
])
def test_a_few_training_steps_reduce_the_loss(make):
    torch.manual_seed(0)
    data = ShapesDataset(16, image_size=32, seed=1)
    loader = DataLoader(data, batch_size=8, shuffle=False)
    model = make()
    history = fit(model, loader, epochs=6, lr=1e-2, progress=False, device="cpu")
    losses = history["train_loss"]
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("cls,kwargs,match", [
    (UNet, dict(num_classes=0), "num_classes must be a positive int"),
    (UNet, dict(depth=0), "depth must be a positive int"),
    (UNet, dict(stem_stride=4), "stem_stride must be 1 or 2, got 4"),
    (FCN, dict(variant="4s"), "variant must be one of"),
    (FCN, dict(widths=(8, 8)), "widths must be 5 positive ints"),
])
def test_bad_config(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("model", [UNet(base_channels=4), FCN(**SMALL_FCN)])
def test_bad_input(model):
    with pytest.raises(ValueError, match=r"input must have shape \[N, 3, H, W\], got \[2, 1, 8, 8\]"):
        model(torch.zeros(2, 1, 8, 8))
    with pytest.raises(TypeError, match="either"):
        type(model)(model.config, num_classes=3)


def test_stem_stride_2_runs_the_unet_at_half_resolution():
    model = UNet(num_classes=3, base_channels=4, depth=2, stem_stride=2).eval()
    seen = {}
    # (a forward hook that returns something replaces the output: these return None)
    model.encoder[0].register_forward_hook(lambda m, i, o: seen.update(first=o.shape))
    model.refine.register_forward_hook(lambda m, i, o: seen.update(refine_in=i[0].shape))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 48))
    assert seen["first"][-2:] == (16, 24)
    # the full-resolution refinement sees the image's 3 channels beside the up-sampled features
    assert seen["refine_in"] == (1, 4 + 3, 32, 48)


@pytest.mark.parametrize("module", [unet, fcn])
def test_scene_configs(module):
    config = module.scene_config(128, 5)
    assert config.num_classes == 5
    model = (UNet if module is unet else FCN)(config).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 40, 40)).shape == (1, 5, 40, 40)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        module.scene_config(128, 1)
    with pytest.raises(ValueError, match="image_size must be an int >= 16, got 4"):
        module.scene_config(4, 5)
    with pytest.raises(TypeError, match="image_size must be an int, got float"):
        module.scene_config(64.0, 5)


def test_unet_scene_config_is_the_benchmarked_recipe():
    # benchmarks/bench_unet.py: thin; half resolution (stride-2 stem) and depth 4 at 128 px,
    # full resolution and depth 3 at 64
    big, small = unet.scene_config(128, 5), unet.scene_config(64, 3)
    assert (big.stem_stride, big.base_channels, big.depth, big.batch_norm) == (2, 8, 4, True)
    assert (small.stem_stride, small.base_channels, small.depth, small.num_classes) == (1, 8, 3, 3)


def test_fcn_scene_config_variants():
    assert [fcn.scene_config(64, 5, v).variant for v in ("32s", "16s", "8s")] == ["32s", "16s", "8s"]
    with pytest.raises(ValueError, match="variant must be one of"):
        fcn.scene_config(64, 5, "4s")


@pytest.mark.parametrize("kernel", [1, 3])
def test_channels_last_conv_is_nn_conv2d(kernel):
    # same state dict, same outputs and gradients as torch's nn.Conv2d; hands back plain NCHW
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(8, 5, kernel, padding=kernel // 2)
    ours = unet.ChannelsLastConv2d(8, 5, kernel, padding=kernel // 2)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 8, 17, 12, requires_grad=True)
    out = ours(x)
    assert out.is_contiguous()
    (out ** 2).sum().backward()
    grads = (x.grad.clone(), ours.weight.grad)
    x.grad = None
    expected = ref(x)
    (expected ** 2).sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[0], x.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], ref.weight.grad, rtol=1e-4, atol=1e-4)


def test_unet_state_dict_keys_are_plain_conv_keys():
    # the full-resolution layers use ChannelsLastConv2d; the stored weights' keys do not change
    model = UNet(unet.scene_config(128, 5))
    assert isinstance(model.head, unet.ChannelsLastConv2d) and isinstance(model.refine[0], unet.ChannelsLastConv2d)
    assert isinstance(model.encoder[0][0], unet.ChannelsLastConv2d) and isinstance(model.decoder[-1][3], unet.ChannelsLastConv2d)
    assert type(model.encoder[1][0]) is torch.nn.Conv2d
    assert {"head.weight", "head.bias", "refine.0.weight", "encoder.0.0.weight"} <= set(model.state_dict())

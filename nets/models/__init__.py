"""The residual-network family of the four papers, each a discretization of dX = f dt + eps g dW.

See docs/models.md.

=====================  ============================================================
module                 job
=====================  ============================================================
noise                  masks of (3.1), (3.13), (3.14); DropPath; linear decay rule
blocks                 ResidualBlock X + h D(M(F(X))), pre-activation branches, h
base                   ResidualOptions (shared options), epsilon() / num_blocks
preresnet              PreResNet (BasicBlock 6n+2, Bottleneck 9n+2), eq. (4.2)
lm                     LM-ResNet, LM-ResNet paper eq. (1)
shake                  shake-shake PreResNet-26, eq. (3.15)
mlp                    MLP ResNet, smooth-propagation paper eqs. (7), (8)
registry               build_model, list_models, model_options, build_config
step_factor            a uniform h moved off the flow (BatchNorm branches): unit_step_equivalent
benchmark              ``python -m nets.models.benchmark``: step time, plain vs noisy
=====================  ============================================================
"""
from nets.models.base import ResidualOptions, ResidualSDEModel
from nets.models.lm import LMPreResNet, LMPreResNetConfig
from nets.models.mlp import MLPResNet, MLPResNetConfig
from nets.models.noise import DropPath, MultiplicativeNoise, NoiseSpec
from nets.models.preresnet import PreResNet, PreResNetConfig
from nets.models.registry import build_config, build_model, list_models, model_options
from nets.models.shake import ShakePreResNet, ShakePreResNetConfig

__all__ = ["DropPath", "LMPreResNet", "LMPreResNetConfig", "MLPResNet", "MLPResNetConfig", "MultiplicativeNoise",
           "NoiseSpec", "PreResNet", "PreResNetConfig", "ResidualOptions", "ResidualSDEModel", "ShakePreResNet",
           "ShakePreResNetConfig", "build_config", "build_model", "list_models", "model_options"]

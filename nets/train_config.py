"""The training configuration: every field that determines a run of nets.trainer, with its checks.

TrainConfig is what `python -m nets.train` builds from its flags, what checkpoint.pt, config.json and
metrics.h5 record (to_dict, from_recorded) and what a resumed run is compared against; the constants say which
fields change what is computed (MODEL_OPTIONS) and which only how it executes (EXECUTION_FIELDS). No torch:
the sweep and the figures read configurations without it.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from kolmogorov._checks import check_choice
from .lm_start import check_lm_start, is_lm_model
from .stochastic_depth import check_stochastic_depth_mode

NOISE_KINDS = (None, "bernoulli", "gaussian", "uniform")
DEVICES = ("auto", "cpu", "cuda")
MODEL_OPTIONS = ("noise", "p", "nu", "beta", "stochastic_depth", "stochastic_depth_mode", "h", "lm_start")
#: How a run executes, not what it computes: these may change when a run is resumed (e.g. on another device).
#: `data` is the path string only: what the data is, is compared by its fingerprint (Dataset.fingerprint()),
#: except for runs recorded before fingerprints existed, whose data string must still match exactly.
EXECUTION_FIELDS = ("device", "compile", "amp", "channels_last", "eval_batch_size", "data")
#: Key of the data fingerprint in checkpoint.pt, config.json and the metrics.h5 root attributes.
FINGERPRINT_KEY = "data_fingerprint"
#: Key of the data's layout fingerprint (Dataset.layout_fingerprint(): everything but the pixel values), recorded
#: next to FINGERPRINT_KEY: a run whose pixels alone differ (another JPEG decoder) resumes with a warning.
LAYOUT_KEY = "data_layout_fingerprint"
#: Fields added after runs were already recorded, with the value a recorded configuration without them meant.
ADDED_FIELDS = {"input_noise": 0.0, "grad_norm_every": 0, "stochastic_depth_mode": "sample", "lm_start": None,
                "stem_init_scale": 1.0}
#: Largest seed (numpy's RNG takes seeds in [0, 2**32 - 1]).
MAX_SEED = 2**32 - 1
#: Upper bounds of the recipe's learning rate and weight decay (far beyond any useful value; they keep the
#: optimizer's float32 arithmetic finite, so a typo is refused before training instead of failing in it).
MAX_LR = 100.0
MAX_WEIGHT_DECAY = 1.0
#: Float fields (None allowed for the optional ones): each must be a finite real number.
_FLOAT_FIELDS = ("lr", "momentum", "weight_decay", "gamma")  # input_noise: check_input_noise
_OPTIONAL_FLOAT_FIELDS = ("p", "nu", "beta", "stochastic_depth", "h")


def finite_float(name: str, value: Any) -> float:
    """value as a plain float; ValueError naming `name` unless it is a finite real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    return float(value)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. Every field is stored in metrics.h5 under its own name.

    Attributes:
        model: a name from nets.list_models() (preresnet8 = depth 6n+2 with n = 1 for quick runs).
        noise, p, nu, beta: the residual-branch noise of (3.1) / (3.13) / (3.14) (p = survival probability).
        stochastic_depth: survival probability p_L of the last block (linear decay), or None.
        stochastic_depth_mode: "sample" (default: each sample's branch dropped independently, timm style) or
            "batch" (one draw per block and training forward drops the whole block for the whole mini-batch,
            without computing its branch: Huang et al. 2016, the LM-ResNet reference code); "batch" needs
            stochastic_depth. Configurations recorded before this field existed mean "sample".
        h: step factor of X + h F(X), or None for the model's default.
        lm_start: the LM-ResNets' starting value u_{-1} (nets.lm_start): "zero" (u_{-1} = 0) or "rest"
            (u_{-1} = u_0: the first block is a forward Euler step); None (the default) = the model's default,
            "zero". LM models only (build_model refuses it for the others); configurations recorded before
            this field existed mean None.
        stem_init_scale: factor (> 0) on the stem convolution's initial weights (default 1: the model's own
            initialization). With the step factor h it separates the two things a uniform h is in these
            networks (nets.models.step_factor, docs/models.md): the h network is the h = 1 network with its stem
            divided by h and trained at lr / h^2, so h = 1 with stem_init_scale 1 / h changes the stem's scale
            alone, and h with stem_init_scale h its learning rate alone. Models with a stem only (not
            mlp_resnet); configurations recorded before this field existed mean 1.
        data: "synthetic", "digits", or a path (see nets.data.load_dataset).
        input_noise: standard deviation sigma (>= 0, normalized units) of the Gaussian noise on the training
            inputs (robust-ResNet paper, section 4.2, Fig. 8): the run trains on ONE noisy copy of the
            training set, drawn once from a generator seeded by `seed` (every epoch sees the same corrupted
            images; a resumed run rebuilds the same copy), pixel noise sigma * std_c * 255 on channel c with
            std_c the clean training set's channel std, rounded and clipped back to uint8
            (nets.input_noise.add_input_noise). The test set stays clean. 0 (the default) = clean training;
            configurations recorded before this field existed mean 0.
        epochs, batch_size, lr, momentum, weight_decay, milestones, gamma: the recipe (section 4.2.1).
        seed: seeds weights, noise, shuffling and augmentation.
        grad_norm_every: N >= 1 records, every N-th optimizer step of the run (steps 0, N, 2N, ... counted
            across epochs), the L2 norms of each block's gradient (after backward, before the step) and
            weights (robust-ResNet paper, section 4.1, Fig. 2; nets.grad_norms) into metrics.h5; rank 0 only
            under DistributedDataParallel (the gradients are all-reduced). 0 (the default) = off, no extra
            work; configurations recorded before this field existed mean 0.
        device: "auto" (CUDA when available), "cpu" or "cuda".
        compile: wrap the model in torch.compile.
        amp: bf16 autocast (CUDA only; ignored on CPU).
        channels_last: channels_last memory format (CUDA only; ignored on CPU).
        eval_batch_size: batch size of the test-set evaluation.
    """

    model: str = "preresnet20"
    noise: str | None = None
    p: float | None = None
    nu: float | None = None
    beta: float | None = None
    stochastic_depth: float | None = None
    stochastic_depth_mode: str = "sample"
    h: float | None = None
    lm_start: str | None = None
    stem_init_scale: float = 1.0
    data: str = "synthetic"
    input_noise: float = 0.0
    epochs: int = 164
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (81, 122)
    gamma: float = 0.1
    seed: int = 0
    grad_norm_every: int = 0
    device: str = "auto"
    compile: bool = False
    amp: bool = True
    channels_last: bool = True
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        from .grad_norms import check_every
        from .input_noise import check_input_noise

        # input_noise first: its own check names the allowed range ("a finite number >= 0")
        object.__setattr__(self, "input_noise", check_input_noise(self.input_noise))
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, finite_float(name, getattr(self, name)))
        for name in _OPTIONAL_FLOAT_FIELDS:
            if getattr(self, name) is not None:
                object.__setattr__(self, name, finite_float(name, getattr(self, name)))
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "grad_norm_every", check_every(self.grad_norm_every))
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of None, bernoulli, gaussian, uniform; got {self.noise!r}")
        check_stochastic_depth_mode(self.stochastic_depth_mode)
        if self.stochastic_depth_mode != "sample" and self.stochastic_depth is None:
            raise ValueError(f"stochastic_depth_mode {self.stochastic_depth_mode} needs stochastic_depth (p_L in (0, 1]); "
                             "got none")
        if self.lm_start is not None:
            check_lm_start(self.lm_start)
            if not is_lm_model(self.model):  # else build_model's "unknown option(s) ['lm_start']"
                raise ValueError(f"lm_start needs an LM model (lm_preresnet...); got model {self.model!r}")
        object.__setattr__(self, "stem_init_scale", finite_float("stem_init_scale", self.stem_init_scale))
        if not self.stem_init_scale > 0:
            raise ValueError(f"stem_init_scale must be a finite number > 0; got {self.stem_init_scale!r}")
        if self.stem_init_scale != 1.0 and self.model.startswith("mlp"):
            raise ValueError(f"stem_init_scale needs a model with a stem convolution; {self.model} has none")
        check_choice("device", self.device, DEVICES)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in [0, 2**32 - 1 = {MAX_SEED}]; got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        if not 0 < self.lr <= MAX_LR:
            raise ValueError(f"lr must lie in (0, {MAX_LR:g}]; got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1); got {self.momentum!r}")
        if not 0 <= self.weight_decay <= MAX_WEIGHT_DECAY:
            raise ValueError(f"weight_decay must lie in [0, {MAX_WEIGHT_DECAY:g}]; got {self.weight_decay!r}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must lie in (0, 1]; got {self.gamma!r}")
        if any(m < 1 for m in self.milestones) or list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"milestones must be increasing positive epochs; got {list(self.milestones)}")

    @classmethod
    def from_recorded(cls, recorded: dict[str, Any]) -> "TrainConfig":
        """The configuration a run recorded (checkpoint.pt's "config", config.json, metrics.h5's config_json).

        Keys that are not fields (data fingerprints) are ignored; fields added later (ADDED_FIELDS) take the
        value a recording without them meant. Raises ValueError (or TypeError) as the constructor does.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in {**ADDED_FIELDS, **recorded}.items() if k in fields})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    def model_options(self) -> dict[str, Any]:
        """The options passed to nets.build_model (those that are set)."""
        return {k: getattr(self, k) for k in MODEL_OPTIONS if getattr(self, k) is not None}

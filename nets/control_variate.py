"""J_eps of fixed weights with a first-order control variate: the noise's linear term taken out exactly.

A network with mean-one noise m_k on its residual branches (main paper eqs. (3.1), (3.13), (3.14); stochastic
depth's eta_k / p_k) has, per image, loss(m) = loss(1) + L1(m) + O(|m - 1|^2) with the linear term

    L1(m) = sum_k < d loss / d y_k , y_k * (m_k - 1) >,

y_k the branch output that the k-th injection multiplies, everything taken at the clean network (m = 1). Each
m_k has mean one and is independent of the clean network, so E[L1] = 0 exactly, and

    J_eps = E[loss(m)] = E[loss(m) - L1(m)]

for any eps: subtracting L1 leaves the mean unchanged (no bias) and removes the fluctuation that is first order
in eps. The plain estimator's standard error over draws is O(eps / sqrt(images x draws)) while J_eps - J_0 is
O(eps^2) (the eps^2 law of nets.noise_response), so at small eps the plain estimate drowns in noise; this one's
error is O(eps^2 / sqrt(images x draws)), the same order as what it measures.

One batch costs one clean forward and backward (the weights a_k = d loss / d y_k * y_k, kept for the batch
and shared by every mask kind and eps measured: shared_control_variate_draws) and one forward per draw with
masks drawn here, recorded, and applied through forward hooks on the injection modules
(nets.models.noise.MultiplicativeNoise and DropPath, in eval mode, where they are the identity), so the masks
are those of training: the same samplers and shapes.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nets.models.noise import DropPath, MultiplicativeNoise, apply_mask

#: a mask for one injection module and its clean output y (same dtype; broadcastable to y's shape)
MaskDrawer = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def injection_modules(model: nn.Module) -> list[nn.Module]:
    """The injections that draw noise in training, in registration (forward) order: MultiplicativeNoise with a
    non-trivial mask and DropPath with survival below 1."""
    found = []
    for module in model.modules():
        if isinstance(module, MultiplicativeNoise) and module.spec is not None and not module.spec.trivial:
            found.append(module)
        elif isinstance(module, DropPath) and module.survival is not None and module.survival != 1.0:
            found.append(module)
    return found


def draw_training_mask(module: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """The mask `module` multiplies y by in training (its draw_mask): element-wise for MultiplicativeNoise, one
    eta / p per sample for DropPath in "sample" mode, one for the whole batch in "batch" mode; drawn from
    torch's generator of y's device, in draw_dtype(y.dtype)."""
    if isinstance(module, (MultiplicativeNoise, DropPath)):
        return module.draw_mask(y)
    raise ValueError(f"module must be a MultiplicativeNoise or DropPath; got {type(module).__name__}")


def first_order_weights(model: nn.Module, modules: Sequence[nn.Module], images: torch.Tensor,
                        labels: torch.Tensor) -> tuple[float, int, list[torch.Tensor]]:
    """Clean pass of one batch: (sum of cross-entropies, wrong predictions, a_k = d loss / d y_k * y_k per module).

    The sum over the batch of L1(m) is then sum_k <a_k, m_k - 1>. model in eval mode (its injections are the
    identity); its parameters must require gradients (as nets.build_model leaves them), the gradient being taken
    with respect to the injections' outputs y_k through the network's graph.
    """
    outputs: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda module, args, out: outputs.append(out)) for m in modules]
    try:
        with torch.enable_grad():
            logits = model(images)
            loss = F.cross_entropy(logits.double(), labels, reduction="sum")
            grads = torch.autograd.grad(loss, outputs) if outputs else ()
    finally:
        for handle in handles:
            handle.remove()
    wrong = int((logits.argmax(dim=1) != labels).sum())
    return float(loss.detach()), wrong, [(g * y).detach() for g, y in zip(grads, outputs)]


def injected_loss(model: nn.Module, modules: Sequence[nn.Module], images: torch.Tensor, labels: torch.Tensor,
                  masks: Sequence[torch.Tensor] | MaskDrawer) -> tuple[float, int, list[torch.Tensor]]:
    """(sum of cross-entropies, wrong predictions, the masks used) of one batch with each module's output y_k
    multiplied by a mask: masks[k] given, or drawn by masks(module, y_k). model in eval mode."""
    used: list[torch.Tensor] = []

    def inject(module, args, out):
        mask = masks(module, out) if callable(masks) else masks[len(used)]
        used.append(mask)
        return apply_mask(out, mask)

    handles = [m.register_forward_hook(inject) for m in modules]
    try:
        with torch.no_grad():
            logits = model(images)
            loss = float(F.cross_entropy(logits.double(), labels, reduction="sum"))
    finally:
        for handle in handles:
            handle.remove()
    if len(used) != len(modules):
        raise ValueError(f"masks: {len(modules)} injections, {len(used)} applied in the forward pass")
    return loss, int((logits.argmax(dim=1) != labels).sum()), used


def linear_term(weights: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> float:
    """sum_k <a_k, m_k - 1> over the batch: the first-order change of the summed loss under masks m_k."""
    return float(sum(torch.sum(a.double() * (m.double() - 1.0)) for a, m in zip(weights, masks)))


def control_variate_draws(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, draws: int,
                          batch_size: int) -> tuple[list[float], list[float]]:
    """Per draw, (mean of loss(m) - L1(m) over the images, error rate of the noisy network): `draws` passes with
    training masks drawn here (torch's generator; seed it before), batch by batch (for each batch one clean pass,
    then one noisy pass per draw). model in eval mode; with no active injection every draw is the clean loss."""
    return shared_control_variate_draws([model], images, labels, draws, batch_size,
                                        start_state=generator_state(images.device))[0]


def shared_control_variate_draws(models: Sequence[nn.Module], images: torch.Tensor, labels: torch.Tensor,
                                 draws: int, batch_size: int, start_state: torch.Tensor,
                                 progress: bool = False, drawers: Sequence[MaskDrawer] | None = None,
                                 ) -> list[tuple[list[float], list[float]]]:
    """control_variate_draws of each model as if each ran alone from the generator state `start_state`, bit for
    bit, with one clean backward pass per batch for all of them. drawers: one MaskDrawer per model (default:
    each module's training mask, draw_training_mask); any mask of mean one keeps E[L1] = 0.

    The weights a_k = d loss / d y_k * y_k are those of the clean network (the injections are the identity in eval
    mode), so models that share their weights and the places of their injections (one network under several
    mask kinds or eps) share them; a model without active injections needs none. Each model keeps its own
    generator state from batch to batch, so its draws are those it would get alone. progress: a tqdm bar over the
    batches on stderr.

    Raises:
        ValueError: models whose active injections differ in number (other networks, not one under other masks).
    """
    from tqdm import tqdm

    module_lists = [injection_modules(model) for model in models]
    drawers = [draw_training_mask] * len(models) if drawers is None else list(drawers)
    if len(drawers) != len(models):
        raise ValueError(f"drawers must give one mask drawer per model ({len(models)}); got {len(drawers)}")
    counts = {len(modules) for modules in module_lists if modules}
    if len(counts) > 1:
        raise ValueError(f"models must share their injections' places; got {sorted(counts)} active injections")
    states = [start_state] * len(models)
    corrected = [[0.0] * draws for _ in models]
    wrong = [[0] * draws for _ in models]
    shared = next(((model, modules) for model, modules in zip(models, module_lists) if modules), None)
    starts = range(0, images.shape[0], batch_size)
    for start in tqdm(starts, desc="control variate", unit="batch", disable=not progress, leave=False):
        batch, target = images[start:start + batch_size], labels[start:start + batch_size]
        weights = first_order_weights(shared[0], shared[1], batch, target)[2] if shared else []
        for index, (model, modules, drawer) in enumerate(zip(models, module_lists, drawers)):
            _set_generator_state(images.device, states[index])
            for draw in range(draws):
                loss, errors, masks = injected_loss(model, modules, batch, target, drawer)
                corrected[index][draw] += loss - (linear_term(weights, masks) if modules else 0.0)
                wrong[index][draw] += errors
            states[index] = generator_state(images.device)
    n = images.shape[0]
    return [([total / n for total in totals], [errors / n for errors in mistakes])
            for totals, mistakes in zip(corrected, wrong)]


def generator_state(device: torch.device) -> torch.Tensor:
    """The state of torch's default generator of `device` (the one the masks are drawn from): the start_state of
    shared_control_variate_draws."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.get_rng_state()


def _set_generator_state(device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)

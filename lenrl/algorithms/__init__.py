"""RL objectives: group advantages, clipped policy loss, DRPO objective, dynamic sampling."""

from lenrl.algorithms.advantages import ADVANTAGES, get_advantage
from lenrl.algorithms.drpo import DRPOConfig, drpo_loss
from lenrl.algorithms.filtering import compact_groups, keep_groups
from lenrl.algorithms.losses import KL_ESTIMATORS, LOSS_AGGS, LossConfig, policy_loss

__all__ = [
    "ADVANTAGES",
    "DRPOConfig",
    "KL_ESTIMATORS",
    "LOSS_AGGS",
    "LossConfig",
    "compact_groups",
    "drpo_loss",
    "get_advantage",
    "keep_groups",
    "policy_loss",
]

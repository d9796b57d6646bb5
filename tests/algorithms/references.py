"""NumPy references shared by several algorithm tests (written independently of the library)."""

import numpy as np


def np_drpo_weights(length, correct, valid, l_max, lam=0.1):
    """Loop reference of DRPO weights: softmax of (1 - L / l_max) / lam over a group's positives."""
    length, correct, valid = np.asarray(length, float), np.asarray(correct), np.asarray(valid, bool)
    w = np.zeros(length.shape)
    for p in range(length.shape[0]):
        pos = [g for g in range(length.shape[1]) if valid[p, g] and correct[p, g] >= 0.5]
        if not pos:
            continue
        logits = np.array([(1.0 - length[p, g] / l_max) / lam for g in pos])
        e = np.exp(logits - logits.max())
        for g, v in zip(pos, e / e.sum(), strict=True):
            w[p, g] = v
    return w

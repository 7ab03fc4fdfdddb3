"""Exercises of notebook 03 (fusion math).

* 03.concat_weight: build W = [W_1 W_2] so that W [I'; T'] = W_1 I' + W_2 T'.
* 03.xor_features:  engineer fused features that let a LINEAR classifier solve the XOR task.
* 03.param_counts:  count the parameters of TFN and LMF from their formulas.
"""

from __future__ import annotations

import math

import torch

from mmcourse.exercises import register


def _call(answer, *args):
    if not callable(answer):
        raise AssertionError(f"your answer should be a function, got {type(answer).__name__}")
    return answer(*args)


# --- 03.concat_weight -------------------------------------------------------------------------


def _check_concat_weight(answer) -> None:
    g = torch.Generator().manual_seed(3)
    for hidden, d_i, d_t in ((4, 5, 3), (2, 1, 6)):
        W1, W2 = torch.randn(hidden, d_i, generator=g), torch.randn(hidden, d_t, generator=g)
        I, T = torch.randn(7, d_i, generator=g), torch.randn(7, d_t, generator=g)
        W = _call(answer, W1.clone(), W2.clone())
        if not isinstance(W, torch.Tensor):
            raise AssertionError(f"return a torch.Tensor, got {type(W).__name__}")
        if tuple(W.shape) != (hidden, d_i + d_t):
            raise AssertionError(
                f"for W1 of shape {tuple(W1.shape)} and W2 of shape {tuple(W2.shape)}, W should "
                f"have shape (hidden, d_I + d_T) = {(hidden, d_i + d_t)}; got {tuple(W.shape)}. "
                "The matrices go side by side (columns), not on top of each other."
            )
        fused = torch.cat([I, T], dim=1) @ W.T
        if not torch.allclose(fused, I @ W1.T + T @ W2.T, atol=1e-5):
            raise AssertionError(
                "W [I'; T'] differs from W1 I' + W2 T'. The first d_I columns of W must be W1 "
                "and the last d_T columns W2, in the same order as the concatenation."
            )


def _solution_concat_weight():
    def concat_weight(W1, W2):
        # W [I'; T'] = W[:, :d_I] I' + W[:, d_I:] T': the columns of W meet I' then T'
        return torch.cat([W1, W2], dim=1)

    return concat_weight


register(
    "03.concat_weight",
    check=_check_concat_weight,
    solution=_solution_concat_weight,
    hint="W multiplies the stacked vector [I'; T'], so its first d_I columns act on I' and the "
    "rest on T'. torch.cat along dim=1.",
)


# --- 03.xor_features --------------------------------------------------------------------------


def _linear_probe_accuracy(features_fn) -> float:
    """Fit logistic regression on features of one XOR set, score it on a fresh one."""
    from sklearn.linear_model import LogisticRegression

    from mmcourse.fusion_demo import make_xor_modalities

    train, y_train = make_xor_modalities(400, seed=11)
    test, y_test = make_xor_modalities(400, seed=12)
    feats = []
    for x in (train, test):
        f = _call(features_fn, x["a"].clone(), x["b"].clone())
        if not isinstance(f, torch.Tensor) or f.ndim != 2 or f.shape[0] != 400:
            raise AssertionError(
                "return a 2-D tensor with one row per example (400, k); got "
                f"{getattr(f, 'shape', type(f).__name__)}"
            )
        if not torch.isfinite(f).all():
            raise AssertionError("your features contain NaN or infinity")
        feats.append(f.detach().double().numpy())
    clf = LogisticRegression(max_iter=2000).fit(feats[0], y_train.numpy())
    return float(clf.score(feats[1], y_test.numpy()))


def _check_xor_features(answer) -> None:
    acc = _linear_probe_accuracy(answer)
    if acc < 0.9:
        raise AssertionError(
            f"a linear classifier on your features reaches {acc:.1%} on fresh XOR data "
            "(90% needed). Sums and concatenations of the modalities stay additive: the label "
            "depends on a PRODUCT of the two modalities' first features."
        )


def _solution_xor_features():
    def xor_features(x_a, x_b):
        # concatenation keeps the unimodal parts; the outer product adds every a_i * b_j,
        # among them a_0 * b_0 ~ s_a * s_b, which is -1 exactly when the label is 1
        pairwise = (x_a.unsqueeze(2) * x_b.unsqueeze(1)).flatten(1)
        return torch.cat([x_a, x_b, pairwise], dim=1)

    return xor_features


register(
    "03.xor_features",
    check=_check_xor_features,
    solution=_solution_xor_features,
    hint="Give the linear classifier a multiplicative term, e.g. x_a[:, :1] * x_b[:, :1] "
    "(or the whole outer product, as in TFN).",
)


# --- 03.param_counts --------------------------------------------------------------------------

_CASES = (([4, 3], 5, 2), ([16, 16], 32, 4), ([8, 6, 5], 10, 3), ([1, 1], 1, 1))


def _check_param_counts(answer) -> None:
    from mmcourse.fusion import LowRankFusion, TensorFusion, count_parameters

    for in_dims, out_dim, rank in _CASES:
        got = _call(answer, list(in_dims), out_dim, rank)
        if not isinstance(got, dict) or set(got) != {"tfn", "lmf"}:
            raise AssertionError('return a dict {"tfn": int, "lmf": int}')
        want = {
            "tfn": count_parameters(TensorFusion(in_dims, out_dim)),
            "lmf": count_parameters(LowRankFusion(in_dims, out_dim, rank)),
        }
        for key in ("tfn", "lmf"):
            if got[key] != want[key]:
                raise AssertionError(
                    f"for in_dims={in_dims}, out_dim={out_dim}, rank={rank} the {key.upper()} "
                    f"count is {want[key]}, you gave {got[key]}. Did you count the appended 1 "
                    "of every modality, and the biases (and, for LMF, the rank weights)?"
                )


def _solution_param_counts():
    def param_counts(in_dims, out_dim, rank):
        tensor_size = math.prod(d + 1 for d in in_dims)  # prod_i (d_i + 1)
        tfn = (tensor_size + 1) * out_dim  # one linear layer on vec(Z), with bias
        lmf = rank * sum(d + 1 for d in in_dims) * out_dim + rank + out_dim  # factors, lambda, b
        return {"tfn": tfn, "lmf": lmf}

    return param_counts


register(
    "03.param_counts",
    check=_check_param_counts,
    solution=_solution_param_counts,
    hint="TFN: a linear layer on a vector of prod(d_i + 1) entries. LMF: R factors of shape "
    "(d_i + 1, out_dim) per modality, R rank weights, one bias of out_dim.",
)

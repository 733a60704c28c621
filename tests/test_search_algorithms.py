"""Search algorithms: order, deduplication, mutation, halving and checkpoint restore."""

import numpy as np
import pytest

from search.algorithms import (ExhaustiveSearch, RandomSearch, RegularizedEvolution,
                               SuccessiveHalving)
from swish_tf import SearchSpace, expressions, parse_expression

def drain(algorithm, reward=lambda candidate: 0.5, limit=10_000):
    proposed = []
    while len(proposed) < limit:
        candidate = algorithm.propose()
        if candidate is None:
            break
        proposed.append(candidate)
        algorithm.observe(candidate, reward(candidate))
    return proposed


def test_exhaustive_visits_each_function_once_in_order():
    space = SearchSpace(left_unary=("identity",), right_unary=("identity", "sin", "neg"),
                        binary=("add", "max", "sub"))
    proposed = drain(ExhaustiveSearch(space))
    texts = [candidate.expression for candidate in proposed]
    assert texts[:3] == ["x + x", "x", "x - x"]  # max(x, x) decodes to x.
    keys = [expressions.canonical_key(parse_expression(text)) for text in texts]
    assert len(keys) == len(set(keys))
    assert [candidate.sample for candidate in proposed] == list(range(len(proposed)))


def test_exhaustive_skips_equivalent_forms():
    space = SearchSpace(left_unary=("identity", "sin"), right_unary=("identity", "sin"),
                        binary=("add",))
    texts = [candidate.expression for candidate in drain(ExhaustiveSearch(space))]
    # sin(x) + x duplicates x + sin(x).
    assert texts == ["x + x", "x + sin(x)", "sin(x) + sin(x)"]


def resume_matches_uninterrupted(make, steps_before=7, total=20):
    reward = lambda candidate: (hash(candidate.expression) % 100) / 100.0
    reference = [c.expression for c in drain(make(), reward, total)]
    first = make()
    before = [c.expression for c in drain(first, reward, steps_before)]
    second = make()
    second.load_state_dict(first.state_dict())
    after = [c.expression for c in drain(second, reward, total - steps_before)]
    return reference == before + after


@pytest.mark.parametrize("make", [
    lambda: ExhaustiveSearch(SearchSpace()),
    lambda: RandomSearch(SearchSpace(), max_samples=20, seed=3),
    lambda: RegularizedEvolution(SearchSpace(), max_samples=20, population_size=5,
                                 tournament_size=2, seed=3),
])
def test_restored_state_continues_identically(make):
    assert resume_matches_uninterrupted(make)


def test_random_search_is_seeded_and_bounded():
    first = [c.tokens for c in drain(RandomSearch(SearchSpace(), max_samples=15, seed=1))]
    second = [c.tokens for c in drain(RandomSearch(SearchSpace(), max_samples=15, seed=1))]
    assert len(first) == 15
    assert first == second


def test_mutation_changes_exactly_one_token():
    evolution = RegularizedEvolution(SearchSpace(num_units=2), seed=0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        tokens = [int(rng.integers(len(evolution.space.vocabulary(p))))
                  for p in range(evolution.space.num_tokens)]
        mutated = evolution.mutate(tokens)
        differences = [p for p in range(len(tokens)) if tokens[p] != mutated[p]]
        assert len(differences) == 1
        evolution.space.validate(mutated)


def test_evolution_population_ages_out():
    evolution = RegularizedEvolution(SearchSpace(), max_samples=30, population_size=4,
                                     tournament_size=2, seed=0)
    drain(evolution)
    assert len(evolution.population) == 4
    assert evolution.num_proposed == 30


def test_successive_halving_promotes_best():
    space = SearchSpace(left_unary=("identity",), right_unary=("sin", "cos", "tanh"),
                        binary=("add", "max", "min"))
    halving = SuccessiveHalving(RandomSearch(space, max_samples=9, seed=0), num_candidates=9,
                                min_train_steps=10, max_train_steps=90, reduction_factor=3)
    assert halving.budgets == [10, 30, 90]
    scores = {}

    def reward(candidate):
        # A fixed score per function, so promotions are predictable.
        scores.setdefault(candidate.tokens, len(scores) / 10.0)
        return scores[candidate.tokens]

    proposed = drain(halving, reward)
    budgets = [candidate.train_steps for candidate in proposed]
    assert budgets.count(10) == 9
    assert budgets.count(30) == 3
    assert budgets.count(90) == 1
    rung0 = [c for c in proposed if c.train_steps == 10]
    best = max(rung0, key=lambda c: scores[c.tokens])
    assert [c.tokens for c in proposed if c.train_steps == 90] == [best.tokens]
    assert halving.finished


def test_invalid_arguments_name_the_value():
    with pytest.raises(ValueError, match="reduction_factor must be at least 2, received 1"):
        SuccessiveHalving(RandomSearch(SearchSpace()), reduction_factor=1)
    with pytest.raises(ValueError, match="tournament_size must be in"):
        RegularizedEvolution(SearchSpace(), population_size=3, tournament_size=5)
    with pytest.raises(ValueError, match="not finite|store failed children"):
        algorithm = RandomSearch(SearchSpace(), max_samples=1)
        algorithm.observe(algorithm.propose(), float("nan"))

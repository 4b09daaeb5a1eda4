"""Rasa's TED policy with an exact cache of its predictions (issue 14: profiled under load).

TED ran 2-3 TensorFlow calls per turn (after the user's message, after each action) and was the
largest remaining share of the Rasa process's CPU at 100 concurrent conversations (28 %,
benchmarks/load/PROFILE.md). Without end-to-end training data TED's input is a pure function of
the dialogue's last ``max_history`` *states* (intent and entity names, featurized slots, the
previous action, the active loop), and conversations of one assistant repeat the same few
hundred state sequences: a prediction computed once for a sequence is the prediction for every
tracker that reaches it.

:class:`CachedTEDPolicy` trains, persists and loads exactly as ``TEDPolicy`` (same configuration,
same model files). At prediction time it computes the states Rasa's featurizer would feed the
network and looks them up in a least-recently-used cache of ``prediction_cache_size`` entries
(0 turns it off); on a miss it asks TED and keeps the answer. It falls back to TED uncached when
the prediction could depend on anything else: a model trained with end-to-end stories (user or
bot *text* in the states, TED's second text-based batch, entities predicted by TED).

Use it in config.yml as ``tandem_rasa.policies.CachedTEDPolicy``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from rasa.core.policies.policy import PolicyPrediction, SupportedData
from rasa.core.policies.ted_policy import TEDPolicy
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import ACTION_TEXT, TEXT

CACHE_SIZE_KEY = "prediction_cache_size"
DEFAULT_CACHE_SIZE = 4096


@dataclass(frozen=True)
class _Cached:
    probabilities: tuple[float, ...]
    diagnostic_data: Any


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITH_END_TO_END_SUPPORT, is_trainable=True)
class CachedTEDPolicy(TEDPolicy):
    """``TEDPolicy`` whose predictions are cached by the dialogue states they are a function of."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """TED's defaults plus the size of the prediction cache."""
        return {**TEDPolicy.get_default_config(), CACHE_SIZE_KEY: DEFAULT_CACHE_SIZE}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self.cache_hits = 0

    @property
    def _cache_size(self) -> int:
        return max(0, int(self.config.get(CACHE_SIZE_KEY, DEFAULT_CACHE_SIZE)))

    def _cacheable_model(self) -> bool:
        # With text in the fake features TED also scores the user's text (a second batch row)
        # and may predict entities from it: the prediction is no function of the states alone.
        return self.model is not None and not self.only_e2e and TEXT not in self.fake_features

    def _state_key(
        self, tracker: DialogueStateTracker, domain: Domain, rule_only_data: dict[str, Any] | None
    ) -> str | None:
        """The states TED's featurizer builds for this tracker (as JSON), None if they hold text."""
        if self.featurizer is None:
            return None
        ml_only = self.supported_data() == SupportedData.ML_DATA
        states = self.featurizer.prediction_states(
            [tracker],
            domain,
            use_text_for_last_user_input=False,
            ignore_rule_only_turns=ml_only,
            rule_only_data=rule_only_data,
            ignore_action_unlikely_intent=ml_only,
        )[0]
        for state in states:
            for sub_state in state.values():
                if TEXT in sub_state or ACTION_TEXT in sub_state:
                    return None
        return json.dumps(states, sort_keys=True, default=list)

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: dict[str, Any] | None = None,
        precomputations: Any = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        """TED's prediction for the tracker, from the cache when its states were seen before."""
        size = self._cache_size
        key = self._state_key(tracker, domain, rule_only_data) if size and self._cacheable_model() else None
        if key is not None:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return self._prediction(list(hit.probabilities), diagnostic_data=hit.diagnostic_data)
        prediction = super().predict_action_probabilities(
            tracker, domain, rule_only_data=rule_only_data, precomputations=precomputations, **kwargs
        )
        if key is not None and not prediction.is_end_to_end_prediction and not prediction.optional_events:
            self._cache[key] = _Cached(tuple(prediction.probabilities), prediction.diagnostic_data)
            while len(self._cache) > size:
                self._cache.popitem(last=False)
        return prediction


__all__ = ["CachedTEDPolicy"]

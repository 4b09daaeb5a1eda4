"""Rasa's ResponseSelector, run only for the messages it can matter for (issue 14, profiled).

The selector picks the FAQ answer of a ``faq/<topic>`` question; only ``action_answer_faq`` reads
its output, and only the rules for the intent ``faq`` run that action. Rasa runs the selector's
network on every message anyway: 12 % of the Rasa process's CPU at 100 concurrent conversations
(py-spy), for the few turns that are FAQ questions. This subclass trains exactly as Rasa's (same
configuration, same model) and, at parse time, selects a response only when the intent classifier
(earlier in the pipeline) ranked the selector's retrieval intent first; other messages carry no
``response_selector`` output, as if the selector had found nothing.

Use it in config.yml as ``tandem_nlu.selector.IntentGatedResponseSelector``, after the intent
classifier.
"""

from __future__ import annotations

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY
from rasa.shared.nlu.training_data.message import Message


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class IntentGatedResponseSelector(ResponseSelector):
    """A ``ResponseSelector`` that runs only on messages whose top intent is its retrieval intent."""

    def process(self, messages: list[Message]) -> list[Message]:
        """Select responses for the messages of the retrieval intent; leave the others as they are."""
        wanted = [m for m in messages if self._is_retrieval(m)]
        if wanted:
            super().process(wanted)
        return messages

    def _is_retrieval(self, message: Message) -> bool:
        if not self.retrieval_intent:
            return True  # a selector for every retrieval intent: Rasa's behaviour
        intent = message.get(INTENT) or {}
        return isinstance(intent, dict) and intent.get(INTENT_NAME_KEY) == self.retrieval_intent


__all__ = ["IntentGatedResponseSelector"]
